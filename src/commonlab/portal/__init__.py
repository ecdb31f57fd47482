"""Server-rendered public and member pages."""
