"""``shipload review``: a local web app to check calls and label chips.

``app`` serves the page and its API, ``store`` keeps the labels in SQLite so that nothing is
lost, ``table`` orders and filters predict's rows, ``page`` renders the HTML.
"""
