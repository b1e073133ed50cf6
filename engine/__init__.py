"""vidseek engine: catalog, vector and lexical indexes, encoders, configuration, errors.

Knows nothing of video decoding or HTTP.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
