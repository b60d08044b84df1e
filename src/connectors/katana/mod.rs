//! Katana MRP API connector.
