"""Orders & Inventory: products, stock and orders behind a shop's storefront."""

__version__ = "1.0.0"
