"""The lakehouse: every table declared once (``tables``) and all Delta access (``io``)."""
