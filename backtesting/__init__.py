"""Backtesting, apart from the live helpers: recorded-feed reading and the synthetic market
(``market_feed``, reading into the columns of ``event_columns``), the compact feed cache
(``feed_cache``), the engine that drives the live bot and the paper venue in data time
(``engine``), results (``report``) and parameter sweeps (``sweep``). ``backtest.py`` is the
command line."""
