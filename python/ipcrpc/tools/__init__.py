"""Command-line tools: the protoc plugin and a protoc wrapper."""
