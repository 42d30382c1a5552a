# src/net wire codec: owned by the wire helper
