"""Errors raised while reading or checking structures."""

from __future__ import annotations


class StructureError(ValueError):
    """A structure file or record cannot be used; the message names the file and the reason."""
