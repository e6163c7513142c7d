"""The execution layer: the one owner of this bot's orders, fills and position.

``records`` holds the data (orders, fills, lots), ``journal`` makes it durable (SQLite), and
``engine`` sends, tracks, resolves and reconciles. Strategies read from the engine and hear its
events; the orchestrator sends through it; nothing else keeps order bookkeeping.
"""
