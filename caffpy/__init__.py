"""caffpy: sign the keys of a keysigning party and mail each signed user ID."""

__version__ = "0.1.0"
