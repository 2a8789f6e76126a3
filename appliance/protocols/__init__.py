"""NASDAQ wire protocols and file formats (reference codecs in Python).

``moldudp64``: MoldUDP64 packet framing; ``binaryfile``: NASDAQ BinaryFILE.
"""

__all__ = ["moldudp64", "binaryfile"]
