//! HTTP and HTTPS probes (being written).
