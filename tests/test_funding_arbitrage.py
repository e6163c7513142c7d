"""Funding-rate arbitrage on two paper venues, on simulated time.

The real TradingBot runs the strategy against two paper venues whose market the test drives
(``drive_externally``): the test moves the clock, prints quotes on both venues (which is also
when the paper venue settles funding), and makes orders fail on purpose. Each test checks the
money: the venues' positions, the journals, and the funding collected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from exchanges.base import FundingRate, InsufficientFunds, OrderSide, OrderType, Position, SlippageExceeded
from exchanges.paper import PaperExchangeClient
from helpers.clock import SimulatedClock
from helpers.combined_account import CombinedAccount
from helpers.trading_config import RiskLimits, TradingConfig, VenueSpec
from strategies.base_strategy import OrderParams, OrderRole
from strategies.funding_arbitrage_strategy import (
    PAIR_META_KEY,
    common_step,
    from_apr_pct,
    hourly_rate,
    leg_size,
    rank,
    spread_per_hour,
    to_apr_pct,
)
from trading_bot import BotSummary, TradingBot

D = Decimal
START = 1_700_000_000.0  # 22:13:20 UTC: 8-hour settlements at 00:00, 08:00, 16:00
HOUR = 3600.0


# -- pure arithmetic ----------------------------------------------------------------------------


def test_rates_are_normalised_per_hour_across_intervals() -> None:
    eight_hourly = FundingRate("BTC", D("0.0008"), interval_hours=D(8))
    hourly = FundingRate("BTC", D("0.0001"), interval_hours=D(1))
    assert hourly_rate(eight_hourly) == hourly_rate(hourly) == D("0.0001")
    # 0.01 % per hour is 87.6 % a year
    assert to_apr_pct(D("0.0001")) == D("87.6")
    assert from_apr_pct(D("87.6")) == D("0.0001")


def test_ranking_goes_long_where_the_rate_is_lower_and_short_where_higher() -> None:
    # venue 0 charges longs 0.01 %/8 h, venue 1 0.01 %/h: longs pay less on venue 0.
    hourly = [
        hourly_rate(FundingRate("X", D("0.0001"), D(8))),
        hourly_rate(FundingRate("X", D("0.0001"), D(1))),
    ]
    best = rank(hourly, [D(0), D(0)], [D(0), D(0)], D(24))
    assert (best.long_venue, best.short_venue) == (0, 1)
    assert best.gross_per_hour == D("0.0001") - D("0.0000125")
    # A negative rate pays longs: with venue 1 negative, long there and short venue 0.
    flipped = rank([D("0.00001"), D("-0.00002")], [D(0), D(0)], [D(0), D(0)], D(24))
    assert (flipped.long_venue, flipped.short_venue) == (1, 0)
    assert flipped.gross_per_hour == D("0.00003")


def test_the_opportunity_is_net_of_both_venues_fees_and_crossing_costs() -> None:
    best = rank([D(0), D("0.0001")], [D("0.0001"), D("0.0002")], [D("0.0002"), D("0.0005")], D(10))
    cost = 2 * (D("0.0001") + D("0.0002") + D("0.0002") + D("0.0005"))
    assert best.cost_fraction == cost
    assert best.net_per_hour == D("0.0001") - cost / 10


def test_sign_convention_short_receives_its_rate_and_long_pays_its() -> None:
    assert spread_per_hour([D("0.0001"), D("0.0003")], long_venue=0, short_venue=1) == D("0.0002")
    assert spread_per_hour([D("0.0001"), D("0.0003")], long_venue=1, short_venue=0) == D("-0.0002")


def test_leg_sizes_are_multiples_of_both_size_steps_and_capped_by_notional() -> None:
    assert common_step(D("0.001"), D("0.0025")) == D("0.005")
    assert leg_size(D("0.0137"), D("100000"), D("100"), [D("0.001"), D("0.0025")]) == D("0.010")
    assert leg_size(D("5"), D("250"), D("100"), [D("0.1"), D("0.01")]) == D("2.5")
    assert leg_size(D("0.004"), D("1000"), D("100"), [D("0.001"), D("0.0025")]) == D("0")


# -- the bot on two paper venues ----------------------------------------------------------------


def venue_params(rate: str, interval_hours: str, **extra: object) -> dict[str, object]:
    return {
        "drive_externally": True,
        "funding_rate": rate,
        "funding_interval_hours": interval_hours,
        "taker_fee_pct": "0.02",
        "size_step": "0.01",
        "tick_size": "0.001",
        "min_notional": "1",
        "start_balance": "100000",
        **extra,
    }


class Pairs:
    """One funding-arbitrage bot on two externally driven paper venues."""

    def __init__(
        self,
        log_dir: Path | None = None,
        venue0: dict[str, object] | None = None,
        venue1: dict[str, object] | None = None,
        clock: SimulatedClock | None = None,
        **params: object,
    ) -> None:
        self.clock = clock or SimulatedClock(START)
        strategy_params: dict[str, object] = {"check_interval": 60.0, "leg_timeout": 10.0}
        strategy_params.update(params)
        self.config = TradingConfig(
            ticker="BTC",
            exchange="paper",
            strategy="funding_arbitrage",
            quantity=D("1"),
            strategy_params=strategy_params,
            exchange_params=venue0 or venue_params("0.0001", "8"),
            extra_venues=[VenueSpec("paper", venue1 or venue_params("0.0001", "1"))],
            risk=RiskLimits(enabled=False),
            log_dir=log_dir or Path("logs"),
            bot_name="pair_test",
        )
        self.venues = [PaperExchangeClient(self.config.venue_config(index), self.clock) for index in range(2)]
        self.mid = D("100")
        self.quote()
        self.bot = TradingBot(
            self.config, clock=self.clock, venue_clients=self.venues, write_files=log_dir is not None
        )
        self.task: asyncio.Future[BotSummary] | None = None

    def quote(self, mid: Decimal | None = None) -> None:
        if mid is not None:
            self.mid = mid
        for venue in self.venues:
            venue.apply_bbo(self.mid - D("0.005"), self.mid + D("0.005"), D(10), D(10))

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.bot.run())
        await self.settle()

    async def settle(self) -> None:
        self.bot.expect_activity()
        await asyncio.wait_for(self.bot.wait_until_idle(), timeout=10)

    async def advance(self, seconds: float, quote_every: float = 60.0) -> None:
        """Let time pass: quotes every ``quote_every`` s, the bot's timers on the way."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            step_end = min(end, self.clock.now() + quote_every)
            for _ in range(1000):
                deadline = self.clock.next_deadline()
                if deadline is None or deadline > step_end:
                    break
                self.clock.advance_to(deadline)
                await self.settle()
            self.clock.advance_to(step_end)
            self.quote()
            await self.settle()

    async def stop(self) -> BotSummary:
        assert self.task is not None
        self.bot.request_shutdown("test over")
        for _ in range(200):
            if self.task.done():
                break
            await self.settle()
            deadline = self.clock.next_deadline()
            if deadline is not None:
                self.clock.advance_to(deadline)
        return await asyncio.wait_for(self.task, timeout=10)

    def positions(self) -> list[Decimal]:
        return [venue._position_size for venue in self.venues]

    def journal_positions(self) -> list[Decimal]:
        return [engine.position for engine in self.bot.engines]

    def notes(self, kind: str) -> list[dict[str, object]]:
        return [json.loads(detail) for _, _, _, detail in self.bot.journal.events(kind)]


async def test_end_to_end_two_paper_venues_open_a_pair_and_collect_funding() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(120)
    # venue 0 charges 0.01 %/8 h, venue 1 0.01 %/h: long venue 0, short venue 1, one unit each
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    assert pairs.journal_positions() == pairs.positions()
    assert pairs.bot.strategy.status_summary()["state"] == "open"
    await pairs.advance(10 * HOUR)
    summary = await pairs.stop()
    # ten hourly settlements received on the short leg (0.01 % of ~100 each), and the long leg
    # paid at the 00:00 and 08:00 settlements: net funding positive, and reported.
    received = sum(p[4] for p in pairs.venues[1].funding_payments)
    paid = sum(p[4] for p in pairs.venues[0].funding_payments)
    assert len(pairs.venues[1].funding_payments) == 10 and received == D("0.1")
    assert len(pairs.venues[0].funding_payments) == 2 and paid == D("-0.02")
    assert summary.funding == received + paid
    lines = "\n".join(summary.lines())
    assert "funding 0.0800" in lines
    assert "venue paper#1" in lines and "funding 0.1000" in lines
    assert "pair 1" in summary.strategy_status
    assert summary.position == 0 and summary.venue_position == 0  # delta neutral
    assert pairs.notes("funding"), "funding changes are journaled per leg"
    assert len(pairs.bot.venues[0].execution.journal.fills()) == 1  # one leg per venue journal
    assert len(pairs.bot.venues[1].execution.journal.fills()) == 1


async def test_no_re_entry_while_a_pair_is_open() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(2 * HOUR)
    assert pairs.bot.execution.accepted_count == 1 and pairs.bot.venues[1].execution.accepted_count == 1
    await pairs.stop()


async def test_no_pair_when_costs_eat_the_spread() -> None:
    pairs = Pairs(fee_pct=D("0.5"), hedge_fee_pct=D("0.5"))
    await pairs.start()
    await pairs.advance(600)
    assert pairs.positions() == [0, 0]
    await pairs.stop()


@pytest.mark.parametrize("failing", [0, 1])
async def test_a_refused_leg_is_completed_at_market(failing: int) -> None:
    pairs = Pairs()
    pairs.venues[failing].inject_failure("place_limit_order", InsufficientFunds("margin"))
    await pairs.start()
    await pairs.advance(30, quote_every=1)  # inside the check interval: the first pair itself
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    assert pairs.bot.strategy.status_summary()["state"] == "open"
    assert not pairs.notes("pair_closed")
    await pairs.stop()


@pytest.mark.parametrize("failing", [0, 1])
async def test_a_leg_that_cannot_be_completed_unwinds_the_filled_one(failing: int) -> None:
    pairs = Pairs()
    pairs.venues[failing].inject_failure("place_limit_order", InsufficientFunds("margin"))
    pairs.venues[failing].inject_failure("place_market_order", SlippageExceeded("book too thin"))
    await pairs.start()
    await pairs.advance(30, quote_every=1)  # inside the check interval: no second attempt yet
    assert pairs.positions() == [0, 0]
    assert pairs.journal_positions() == [0, 0]
    (closed,) = pairs.notes("pair_closed")
    assert "hedge failed" in str(closed["reason"])
    assert pairs.bot.strategy.pair is None
    await pairs.stop()


@pytest.mark.parametrize("slow", [0, 1])
async def test_a_leg_resting_past_the_timeout_is_cancelled_and_completed_at_market(slow: int) -> None:
    pairs = Pairs()
    # The slow venue's ask/bid moves away before the leg arrives: its limit at the old touch
    # rests instead of filling.
    original = pairs.venues[slow].place_limit_order

    async def late(contract_id, side, quantity, price, client_order_id, **kwargs):  # type: ignore[no-untyped-def]
        away = D("-1") if side is OrderSide.BUY else D("1")
        return await original(contract_id, side, quantity, price + away, client_order_id, **kwargs)

    pairs.venues[slow].place_limit_order = late  # type: ignore[method-assign]
    await pairs.start()
    await pairs.advance(5, quote_every=1)
    sizes = pairs.positions()
    assert sizes[slow] == 0 and sizes[1 - slow] != 0  # imbalanced, inside the timeout
    await pairs.advance(30, quote_every=1)
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    assert pairs.bot.strategy.status_summary()["state"] == "open"
    await pairs.stop()


async def test_exit_when_the_spread_flips() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(120)
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    pairs.venues[1].options = pairs.venues[1].options.__class__(
        **{**pairs.venues[1].options.__dict__, "funding_rate": D("-0.0001")}
    )
    await pairs.advance(180)
    (closed,) = pairs.notes("pair_closed")
    assert "flipped" in str(closed["reason"])
    # and the next check ranks the venues the other way round: long venue 1, short venue 0
    assert pairs.positions() == [D("-1.00"), D("1.00")]
    await pairs.stop()


async def test_exit_when_the_spread_decays_below_the_threshold() -> None:
    pairs = Pairs(exit_apr=D("50"))  # the spread is ~76.6 % APR; it decays to ~21.9 %
    await pairs.start()
    await pairs.advance(120)
    pairs.venues[1].options = pairs.venues[1].options.__class__(
        **{**pairs.venues[1].options.__dict__, "funding_rate": D("0.00004")}
    )
    await pairs.advance(120)
    assert pairs.positions() == [0, 0]
    (closed,) = pairs.notes("pair_closed")
    assert "decayed" in str(closed["reason"])
    await pairs.stop()


async def test_exit_after_the_maximum_holding_time() -> None:
    pairs = Pairs(max_hold_hours=D("2"))
    await pairs.start()
    await pairs.advance(HOUR)
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    await pairs.advance(HOUR + 120)
    (closed,) = pairs.notes("pair_closed")
    assert "maximum holding time" in str(closed["reason"])
    legs = closed["legs"]
    assert isinstance(legs, list) and D(str(legs[1]["funding"])) > 0  # per-leg accounting
    await pairs.stop()


async def test_exit_when_the_legs_drift_apart() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(120)
    # Someone (or a partial liquidation) takes 0.5 off the short leg on venue 1.
    engine = pairs.bot.venues[1].execution
    await engine.submit(
        OrderParams(
            side=OrderSide.BUY,
            quantity=D("0.5"),
            order_type=OrderType.MARKET,
            post_only=False,
            role=OrderRole.RISK_CLOSE,
            max_slippage_pct=D("1"),
        ),
        "BTC",
    )
    for _ in range(120):
        await pairs.advance(1, quote_every=1)
        if pairs.notes("pair_closed"):
            break
    (closed,) = pairs.notes("pair_closed")
    assert "imbalance" in str(closed["reason"])
    assert pairs.positions() == [0, 0] and pairs.journal_positions() == [0, 0]
    await pairs.stop()


async def test_a_restart_adopts_the_open_pair(tmp_path: Path) -> None:
    first = Pairs(log_dir=tmp_path)
    await first.start()
    await first.advance(120)
    assert first.positions() == [D("1.00"), D("-1.00")]
    await first.stop()
    # The venues keep the position across the restart (the same paper accounts).
    second = Pairs(log_dir=tmp_path, clock=first.clock)
    second.venues = first.venues
    second.bot = TradingBot(second.config, clock=second.clock, venue_clients=first.venues)
    await second.start()
    assert second.journal_positions() == [D("1.00"), D("-1.00")]
    assert second.bot.strategy.status_summary()["state"] == "open"
    saved = json.loads(second.bot.journal.get_meta(PAIR_META_KEY) or "{}")
    assert saved["long_venue"] == 0 and saved["state"] == "open"
    await second.advance(HOUR)
    assert second.bot.execution.accepted_count == 0  # no second pair on top of the adopted one
    await second.stop()


# -- the command line ---------------------------------------------------------------------------

CLI = ["--strategy", "funding_arbitrage", "--exchange", "paper", "--ticker", "btc", "--quantity", "0.01"]
CLI += ["--env-file", "/nonexistent/.env", "--log-dir", "/nonexistent/logs"]


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    import runbot

    with pytest.raises(SystemExit) as exit_info:
        runbot.build_config(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_cli_builds_one_venue_per_exchange_with_its_own_options() -> None:
    import runbot

    config = runbot.build_config(
        [
            *CLI,
            "--hedge-exchange",
            "paper",
            "--paper-funding-interval",
            "8",
            "--hedge-params",
            "funding_rate=0.0003",
            "funding_interval_hours=1",
            "--entry-apr",
            "15",
        ]
    )
    assert config.venue_count == 2
    assert config.exchange_params == {"funding_interval_hours": D("8")}
    assert config.extra_venues == [
        VenueSpec("paper", {"funding_rate": "0.0003", "funding_interval_hours": "1"})
    ]
    assert config.bot_name == "paper-paper_BTC_funding_arbitrage"
    hedge = config.venue_config(1)
    assert hedge.bot_name == "paper-paper_BTC_funding_arbitrage_v1"
    assert hedge.client_id_prefix != config.client_id_prefix  # two paper venues stay apart
    assert config.strategy_params["entry_apr"] == D("15")


def test_cli_refuses_a_venue_count_the_strategy_does_not_trade_on(capsys: pytest.CaptureFixture[str]) -> None:
    assert "trades on 2 venues" in cli_error(capsys, CLI)
    grid = ["--exchange", "paper", "--ticker", "btc", "--quantity", "0.01", "--env-file", "/nonexistent/.env"]
    assert "trades on one venue" in cli_error(capsys, [*grid, "--hedge-exchange", "paper"])
    bad = cli_error(capsys, [*CLI, "--hedge-exchange", "paper", "--hedge-params", "funding_rate=2"])
    assert "--hedge-params" in bad and "funding_rate" in bad


def test_the_bot_refuses_a_config_with_the_wrong_number_of_venues() -> None:
    from exchanges.base import ConfigurationError

    config = TradingConfig(ticker="BTC", exchange="paper", strategy="funding_arbitrage", quantity=D("1"))
    with pytest.raises(ConfigurationError, match="2 venue"):
        TradingBot(config, clock=SimulatedClock(START), write_files=False)


# -- the paper venue's funding ------------------------------------------------------------------


def paper(clock: SimulatedClock, **options: object) -> PaperExchangeClient:
    config = TradingConfig(
        ticker="BTC",
        exchange="paper",
        strategy="grid",
        quantity=D("1"),
        exchange_params={"drive_externally": True, "tick_size": "0.001", "size_step": "0.01", **options},
    )
    venue = PaperExchangeClient(config, clock)
    venue.apply_bbo(D("99.995"), D("100.005"), D(1), D(1))
    return venue


async def test_paper_funding_settles_at_the_offset_and_interval_with_longs_paying_a_positive_rate() -> None:
    clock = SimulatedClock(8 * HOUR * 1000 + 60)  # one minute after an 8-hour boundary
    venue = paper(clock, funding_rate="0.001", funding_interval_hours="2", funding_offset_hours="0.5")
    rate = await venue.get_funding_rate("BTC")
    assert rate.interval_hours == D("2") and rate.rate == D("0.001")
    assert rate.next_funding_time == 8 * HOUR * 1000 + 0.5 * HOUR  # offset 30 min, every 2 h
    await venue.place_market_order("BTC", OrderSide.BUY, D("1"), "c1", D("1"))
    for hours in (0.49, 0.51, 2.49, 2.51):
        clock.advance_to(8 * HOUR * 1000 + hours * HOUR)
        venue.apply_bbo(D("99.995"), D("100.005"), D(1), D(1))
    # two settlements (00:30 and 02:30), each -1 x 100 x 0.001: the long paid
    assert [p[4] for p in venue.funding_payments] == [D("-0.1"), D("-0.1")]
    assert (await venue.get_account_snapshot()).funding_paid == D("0.2")


async def test_paper_funding_rate_process_is_seeded_and_moves_per_settlement() -> None:
    def rates(seed: int) -> list[Decimal]:
        clock = SimulatedClock(START)
        venue = paper(
            clock,
            funding_rate="0.0001",
            funding_interval_hours="1",
            funding_volatility="0.00005",
            funding_seed=seed,
        )
        seen = []
        for hour in range(1, 6):
            clock.advance_to(START + hour * HOUR)
            venue.apply_bbo(D("99.995"), D("100.005"), D(1), D(1))
            seen.append(venue._rate_at(venue._next_funding_time))
        return seen

    first, again, other = rates(3), rates(3), rates(4)
    assert first == again  # reproducible
    assert first != other and len(set(first)) == 5  # a process, not a constant


# -- runbot.py in real time, as a trader runs it ---------------------------------------------------


def test_runbot_runs_the_pair_on_two_paper_venues_in_real_time_and_reports_funding(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, str(root / "runbot.py"), *CLI[:-4], "--env-file", str(tmp_path / "none.env")]
    command += ["--log-dir", str(tmp_path), "--hedge-exchange", "paper", "--duration", "8"]
    # settlements every 1.08 s on both venues; the second venue's rate is four times the first's
    command += [
        "--paper-funding-rate",
        "0.0001",
        "--paper-funding-interval",
        "0.0003",
        "--check-interval",
        "1",
    ]
    command += ["--hedge-params", "funding_rate=0.0004", "funding_interval_hours=0.0003"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "Traceback" not in out + completed.stderr
    assert "pair open: long 0.010 on venue 0, short on venue 1" in out
    venue_lines = [line for line in out.splitlines() if "venue paper#" in line]
    assert len(venue_lines) == 2
    funding = [Decimal(line.rsplit("funding ", 1)[1]) for line in venue_lines]
    assert funding[0] < 0 < funding[1]  # the long paid the lower rate, the short received the higher
    # the pair's state and accounting are in the journal of the first venue, each leg in its own
    from execution.journal import ExecutionJournal

    journal = ExecutionJournal(tmp_path / "paper-paper_BTC_funding_arbitrage_journal.sqlite3")
    assert journal.events("pair_open") and journal.events("funding")
    assert json.loads(journal.get_meta(PAIR_META_KEY) or "{}")["state"] == "open"  # left open for a restart
    journal.close()
    hedge = ExecutionJournal(tmp_path / "paper-paper_BTC_funding_arbitrage_v1_journal.sqlite3")
    assert [fill.side for fill in hedge.fills()] == [OrderSide.SELL]
    hedge.close()


async def test_a_stop_in_the_middle_of_an_entry_unwinds_the_filled_leg() -> None:
    pairs = Pairs()
    original = pairs.venues[1].place_limit_order

    async def away(contract_id, side, quantity, price, client_order_id, **kwargs):  # type: ignore[no-untyped-def]
        return await original(contract_id, side, quantity, price + D("1"), client_order_id, **kwargs)

    pairs.venues[1].place_limit_order = away  # type: ignore[method-assign]  # the short leg rests
    await pairs.start()
    await pairs.advance(2, quote_every=1)
    assert pairs.positions() == [D("1.00"), 0]
    summary = await pairs.stop()
    assert pairs.positions() == [0, 0] and summary.position == 0
    assert pairs.venues[1]._active_orders == {}  # the resting leg was cancelled
    (closed,) = pairs.notes("pair_closed")
    assert "entry interrupted" in str(closed["reason"])


async def test_a_risk_close_closes_both_legs_and_ends_the_pair() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(120)
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    left = await pairs.bot._close_position("test: account loss")
    assert left == 0 and pairs.positions() == [0, 0]
    await pairs.advance(60)
    (closed,) = pairs.notes("pair_closed")
    assert "both legs closed" in str(closed["reason"])
    await pairs.stop()


async def test_paper_funding_replays_a_recorded_rate_history() -> None:
    from tests.shared_paths import FIXTURES_DIR

    history = FIXTURES_DIR / "funding" / "freqtrade_binance_XRP_USDT_8h_funding_rate.json"
    rows = json.loads(history.read_text())
    first_ms = rows[0][0]
    clock = SimulatedClock(first_ms / 1000 - 60)  # one minute before the first recorded settlement
    venue = paper(clock, funding_interval_hours="8", funding_history_path=str(history))
    await venue.connect()
    await venue.place_market_order("BTC", OrderSide.SELL, D("1"), "c1", D("1"))
    for step in range(1, 12):
        clock.advance_to(first_ms / 1000 - 60 + step * 8 * HOUR)
        venue.apply_bbo(D("99.995"), D("100.005"), D(1), D(1))
    recorded = [D(str(row[1])) for row in rows[:11]]
    assert [payment[1] for payment in venue.funding_payments] == recorded[: len(venue.funding_payments)]
    assert len(venue.funding_payments) >= 10
    assert D("0.00013046") in recorded and all(p[4] == p[1] * 100 for p in venue.funding_payments)


async def test_paper_refuses_an_unreadable_funding_history(tmp_path: Path) -> None:
    from exchanges.base import ConfigurationError

    bad = tmp_path / "rates.json"
    bad.write_text('{"not": "rows"}')
    venue = paper(SimulatedClock(START), funding_history_path=str(bad))
    with pytest.raises(ConfigurationError, match="funding_history_path"):
        await venue.connect()


async def test_lighter_rates_are_read_from_its_api_and_normalised_from_their_8_hour_figure() -> None:
    pytest.importorskip("lighter")
    from exchanges.lighter import LighterClient, LighterRest
    from tests.shared_paths import FIXTURES_DIR

    body = (FIXTURES_DIR / "lighter" / "http_funding_rates_multi_exchange_live.json").read_text()

    class Rest:
        async def get(self, path: str, params: object = None) -> object:
            assert path == "/api/v1/funding-rates"
            return LighterRest._parse("GET", path, 200, body, None)

    config = TradingConfig(ticker="TON", exchange="lighter", strategy="grid", quantity=D("1"))
    keys = {
        "LIGHTER_API_PRIVATE_KEY": "0x" + "ab" * 40,
        "LIGHTER_ACCOUNT_INDEX": "1",
        "LIGHTER_API_KEY_INDEX": "4",
    }
    client = LighterClient(config, SimulatedClock(START), env=keys)
    client._rest = Rest()  # type: ignore[assignment]
    rate = await client.get_funding_rate("12")  # the lighter row, not the other exchanges' rows
    assert rate.rate == D("0.00009599999999999999") and rate.interval_hours == 8
    assert hourly_rate(rate) == rate.rate / 8


async def test_exit_when_a_leg_nears_its_liquidation_price() -> None:
    pairs = Pairs()
    await pairs.start()
    await pairs.advance(HOUR)
    assert pairs.positions() == [D("1.00"), D("-1.00")]
    short = pairs.venues[1]
    original = short.get_position

    async def near_liquidation(contract_id: str) -> Position:
        position = await original(contract_id)
        return dataclasses.replace(position, liquidation_price=pairs.mid * D("1.03"))  # 3 % away

    short.get_position = near_liquidation  # type: ignore[method-assign]
    await pairs.advance(180)
    closed = pairs.notes("pair_closed")
    assert closed, "the pair should have been closed"
    assert "venue 1 leg is 3.00 % from its liquidation price" in str(closed[0]["reason"])
    await pairs.stop()


async def test_the_risk_manager_judges_the_combined_account_of_both_venues() -> None:
    pairs = Pairs()
    assert isinstance(pairs.bot.risk_manager._client, CombinedAccount)
    snapshot = await pairs.bot.risk_manager._client.get_account_snapshot()
    assert snapshot.balance == D("200000")  # both paper venues' 100,000
    await pairs.start()
    await pairs.advance(HOUR)
    snapshot = await pairs.bot.risk_manager._client.get_account_snapshot()
    assert sorted(p.size for p in snapshot.positions) == [D("-1.00"), D("1.00")]  # the legs, together
    await pairs.stop()
