"""Encoders shared by indexing and querying, and the registry that builds them.

``get_text_encoder("minilm")`` / ``get_image_encoder("imagenet-minilm")`` return
shared, lazily loaded encoders (see ``engine.models.base`` for the contract).
Importing this package imports no model library.
"""
from engine.models.base import EncoderInfo, ImageEncoder, TextEncoder
from engine.models.registry import (
    clear_encoder_cache,
    get_image_encoder,
    get_text_encoder,
    list_encoders,
    register_image_encoder,
    register_text_encoder,
)

__all__ = [
    "EncoderInfo",
    "TextEncoder",
    "ImageEncoder",
    "register_text_encoder",
    "register_image_encoder",
    "get_text_encoder",
    "get_image_encoder",
    "list_encoders",
    "clear_encoder_cache",
]
