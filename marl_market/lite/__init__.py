"""The browser build: ``dashboard.html`` runs the fixed-rule market under stlite (Pyodide).

``page.py`` is the Streamlit script; ``build.py`` embeds it, the numpy-only core and
``marl_market.plots`` into the HTML page (``python -m marl_market.lite``).
"""
