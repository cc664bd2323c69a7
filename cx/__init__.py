"""Touchpoint's CX engine: the store, import, metrics and analyses. No Streamlit here."""
