"""What the loopback edgeX venue checks and serves, apart from its routes: the captured messages
of ../shared/fixtures/edgex, the v2 metadata built from them, and the verification of both
signatures a real edgeX checks (the private-request HMAC and the EIP-712 order signature).

The verification is written from the published rules (edgeX API v2 docs, "Authentication" and
"L2 Signature Guide"), not from the client: the HMAC is recomputed here with hashlib, the order's
typed data is rebuilt from the request's own fields and the signer recovered with eth-account.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import cache
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.shared_paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "edgex"

#: Chain id and verifying contract of the mock's EIP-712 domain. The captured metadata is from
#: contract API v1 (StarkEx) and has neither; these stand in for ``global.nativeChainId`` and
#: ``global.contractAddress``, the fields API v2 signs with.
MOCK_CHAIN_ID = "33431"
MOCK_CONTRACT_ADDRESS = "0x1ae109ea449cfe0bed08bfe8911e968a49a919b1"

ORDER_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "OrderBase": [
        {"name": "nonce", "type": "uint256"},
        {"name": "signer", "type": "address"},
        {"name": "accountId", "type": "uint64"},
        {"name": "expirationTimestamp", "type": "uint256"},
    ],
    "LimitOrderParams": [
        {"name": "base", "type": "OrderBase"},
        {"name": "amountSynthetic", "type": "int256"},
        {"name": "amountCollateral", "type": "int256"},
        {"name": "amountFee", "type": "uint256"},
        {"name": "assetIdSynthetic", "type": "uint64"},
        {"name": "assetIdCollateral", "type": "uint64"},
        {"name": "isBuyingSynthetic", "type": "bool"},
        {"name": "parentOrderHash", "type": "bytes32"},
        {"name": "subOrderIndex", "type": "uint256"},
    ],
}


@cache
def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture(name: str) -> Any:
    """A fresh copy of one captured message."""
    return json.loads(_fixture_text(name))


def v2_metadata() -> dict[str, Any]:
    """getMetaData's ``data`` as contract API v2 serves it, built from the testnet capture:
    contracts renamed ``{BASE}USD`` as on mainnet (the mainnet capture shows ``BTCUSD``), and the
    v2 signing fields added (``resolution`` = the captured StarkEx resolutions, the mock domain)."""
    data = fixture("http_getMetaData.json")["data"]
    data["global"]["nativeChainId"] = MOCK_CHAIN_ID
    data["global"]["contractAddress"] = MOCK_CONTRACT_ADDRESS
    for coin in data["coinList"]:
        coin["resolution"] = coin.get("starkExResolution") or ""
        if coin["coinName"] == "USDT":
            coin["coinName"] = "USD"
    for contract in data["contractList"]:
        contract["resolution"] = contract["starkExResolution"]
        contract["contractName"] = contract["contractName"].removesuffix("USDT") + "USD"
    return data


def resolution(text: str) -> Decimal:
    text = text.strip().lower()
    return Decimal(int(text, 16)) if text.startswith("0x") else Decimal(text)


# -- the private-request HMAC ------------------------------------------------------------------


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    key = base64.b64encode(secret.encode())
    return hmac.new(key, f"{timestamp}{method}{path}{body}".encode(), hashlib.sha256).hexdigest()


def verify_hmac(secret: str, headers: Mapping[str, str], method: str, path: str, body: str) -> bool:
    given = headers.get("X-edgeX-Signature") or ""
    stamp = headers.get("X-edgeX-Timestamp") or ""
    return bool(given) and hmac.compare_digest(given, hmac_signature(secret, stamp, method, path, body))


def signed_text(value: Any) -> str:
    """The docs' rendering of a JSON value for the HMAC: sorted ``k=v`` joined by ``&``, lists
    joined by ``&``, booleans lower-case, null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "&".join(f"{key}={signed_text(value[key])}" for key in sorted(value))
    if isinstance(value, list):
        return "&".join(signed_text(item) for item in value)
    return str(value)


# -- the EIP-712 order signature ---------------------------------------------------------------


def _contract_and_coin(
    metadata: Mapping[str, Any], contract_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    contract = next(c for c in metadata["contractList"] if c["contractId"] == contract_id)
    coin = next(c for c in metadata["coinList"] if c["coinId"] == contract["quoteCoinId"])
    return contract, coin


def order_typed_data(body: Mapping[str, Any], metadata: Mapping[str, Any], signer: str) -> dict[str, Any]:
    """The typed data a createOrder body commits to, rebuilt from the body's own fields."""
    contract, coin = _contract_and_coin(metadata, str(body["contractId"]))
    size = Decimal(str(body["l2Size"]))
    value = Decimal(str(body["l2Value"]))
    fee = Decimal(str(body["l2LimitFee"]))
    synthetic, collateral = resolution(contract["resolution"]), resolution(coin["resolution"])
    domain = {
        "name": "EdgeX",
        "version": "1",
        "chainId": int(metadata["global"]["nativeChainId"]),
        "verifyingContract": metadata["global"]["contractAddress"],
    }
    return {
        "types": ORDER_TYPES,
        "primaryType": "LimitOrderParams",
        "domain": domain,
        "message": {
            "base": {
                "nonce": int(body["l2Nonce"]),
                "signer": signer,
                "accountId": int(body["accountId"]),
                "expirationTimestamp": int(body["expireTime"]) // 1000,
            },
            "amountSynthetic": int(size * synthetic),
            "amountCollateral": int(value * collateral),
            "amountFee": int(fee * collateral),
            "assetIdSynthetic": int(contract["contractId"]),
            "assetIdCollateral": int(coin["coinId"]),
            "isBuyingSynthetic": body["side"] == "BUY",
            "parentOrderHash": b"\x00" * 32,
            "subOrderIndex": 0,
        },
    }


def client_nonce(client_order_id: str) -> int:
    """The nonce the SDK derives from a client order id (first 32 bits of its SHA-256)."""
    return int(hashlib.sha256(client_order_id.encode()).hexdigest()[:8], 16)


def verify_order_signature(body: Mapping[str, Any], metadata: Mapping[str, Any], signer: str) -> str | None:
    """None when the order's signature is the trading key's over exactly this order; else why not.

    Besides recovering the signer it checks that the signed amounts are the order's own (size,
    price x size, nonce from the client id, the L2 expiry 8 days after the order's), so a
    signature cannot be replayed onto a different order.
    """
    try:
        size = Decimal(str(body["size"]))
        price = Decimal(str(body["price"]))
        if Decimal(str(body["l2Size"])) != size:
            return "l2Size differs from size"
        if Decimal(str(body["l2Value"])) != price * size:
            return "l2Value is not price x size"
        if int(body["l2Nonce"]) != client_nonce(str(body["clientOrderId"])):
            return "l2Nonce does not derive from clientOrderId"
        if int(body["l2ExpireTime"]) != int(body["expireTime"]) + 8 * 24 * 3600 * 1000:
            return "l2ExpireTime is not expireTime + 8 days"
        contract, _coin = _contract_and_coin(metadata, str(body["contractId"]))
        fee_rate = max(Decimal(contract["defaultTakerFeeRate"]), Decimal(contract["defaultMakerFeeRate"]))
        if Decimal(str(body["l2LimitFee"])) < (price * size * fee_rate).to_integral_value(ROUND_CEILING):
            return "l2LimitFee below the fee the order may pay"
        typed = order_typed_data(body, metadata, signer)
        signature = bytes.fromhex(str(body["l2Signature"]).removeprefix("0x"))
        recovered = Account.recover_message(
            encode_typed_data(full_message=copy.deepcopy(typed)), signature=signature
        )
    except (KeyError, ValueError, TypeError, InvalidOperation, StopIteration) as exc:
        return f"unreadable order ({type(exc).__name__})"
    except Exception as exc:  # eth-keys raises its own BadSignature for a malformed signature
        return f"bad signature ({type(exc).__name__})"
    if recovered.lower() != signer.lower():
        return f"signed by {recovered}, not the account's trading key"
    return None


# -- the venue's messages, filled in from the captured ones ------------------------------------

#: Engine statuses (tests/mock_venues/engine.py) in edgeX's words: a partly filled order is OPEN.
STATUS_NAMES = {
    "open": "OPEN",
    "partially_filled": "OPEN",
    "filled": "FILLED",
    "cancelled": "CANCELED",
    "expired": "CANCELED",
}


def fmt(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def envelope(data: Any) -> dict[str, Any]:
    """A SUCCESS answer in the captured envelope (code, data, msg, times, traceId)."""
    body = fixture("http_createOrder.json")
    now = str(int(time.time() * 1000))
    body.update(data=data, requestTime=now, responseTime=now)
    return body


def error_body(code: str, message: str) -> dict[str, Any]:
    body = envelope(None)
    body.update(code=code, msg=message)
    return body


def order_object(
    *,
    order_id: int,
    account_id: str,
    contract_id: str,
    client_id: str,
    side: str,
    price: Decimal,
    size: Decimal,
    time_in_force: str,
    reduce_only: bool,
    status: str,
    cancel_reason: str,
    filled: Decimal,
    filled_quote: Decimal,
    fee: Decimal,
    created_ms: int,
    updated_ms: int,
    request: Mapping[str, Any],
) -> dict[str, Any]:
    """A full order object (the captured getOrderByClientOrderId one) with this order's values."""
    raw = fixture("http_getOrderByClientOrderId.json")["data"][0]
    raw.update(
        id=str(order_id),
        accountId=account_id,
        contractId=contract_id,
        clientOrderId=client_id,
        side=side,
        price=fmt(price),
        size=fmt(size),
        type="LIMIT",
        timeInForce=time_in_force,
        reduceOnly=reduce_only,
        status=status,
        cancelReason=cancel_reason,
        cumFillSize=fmt(filled),
        cumFillValue=fmt(filled_quote),
        cumFillFee=fmt(fee),
        cumMatchSize=fmt(filled),
        cumMatchValue=fmt(filled_quote),
        cumMatchFee=fmt(fee),
        expireTime=str(request.get("expireTime") or "0"),
        l2Nonce=str(request.get("l2Nonce") or "0"),
        l2Value=str(request.get("l2Value") or ""),
        l2Size=str(request.get("l2Size") or ""),
        l2LimitFee=str(request.get("l2LimitFee") or ""),
        l2ExpireTime=str(request.get("l2ExpireTime") or "0"),
        createdTime=str(created_ms),
        updatedTime=str(updated_ms),
    )
    return raw


def fill_object(
    *,
    fill_id: int,
    order_id: int,
    account_id: str,
    contract_id: str,
    side: str,
    size: Decimal,
    price: Decimal,
    fee: Decimal,
    is_maker: bool,
    match_ms: int,
) -> dict[str, Any]:
    """One orderFillTransaction (the captured fill page row) with this fill's values."""
    raw = fixture("http_getHistoryOrderFillTransactionPage.json")["data"]["dataList"][0]
    raw.update(
        id=str(fill_id),
        accountId=account_id,
        contractId=contract_id,
        orderId=str(order_id),
        orderSide=side,
        fillSize=fmt(size),
        fillValue=fmt(size * price),
        fillFee=fmt(fee),
        fillPrice=fmt(price),
        direction="MAKER" if is_maker else "TAKER",
        matchFillId=f"mock-{fill_id}",
        matchTime=str(match_ms),
        createdTime=str(match_ms),
        updatedTime=str(match_ms),
    )
    return raw


def trade_event(
    event: str, version: int, orders: list[dict[str, Any]], fills: list[dict[str, Any]]
) -> dict[str, Any]:
    """A private ``trade-event`` in the documented envelope."""
    message = fixture("ws_private_trade_event_envelope_doc.json")
    message["content"].update(event=event, version=str(version))
    message["content"]["data"].update(order=orders, orderFillTransaction=fills)
    return message


def quote_event(channel: str, data_type: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A public message as the venue sends it live: type ``quote-event`` (the docs say
    ``payload``), content ``{channel, dataType, data}`` (the captured ticker.all.1s frame)."""
    message = fixture("ws_ticker_all_1s_quote_event_live.json")
    message["channel"] = channel
    message["content"] = {"channel": channel, "dataType": data_type, "data": rows}
    return message


def depth_row(
    contract_id: str, start: int, end: int, snapshot: bool, bids: list[list[str]], asks: list[list[str]]
) -> dict[str, Any]:
    """A depth entry (the documented WebSocket shape: [price, size] arrays)."""
    row = fixture("ws_depth_snapshot_doc.json")["content"]["data"][0]
    row.update(
        startVersion=str(start),
        endVersion=str(end),
        level=15,
        contractId=contract_id,
        depthType="SNAPSHOT" if snapshot else "CHANGED",
        bids=bids,
        asks=asks,
    )
    return row


def ticker_row(contract_id: str, name: str, bid: Decimal, ask: Decimal, oracle: Decimal) -> dict[str, Any]:
    """A ticker entry (the live ticker.all.1s row) with this book's best prices."""
    row = fixture("ws_ticker_all_1s_quote_event_live.json")["content"]["data"][0]
    row.update(
        contractId=contract_id,
        contractName=name,
        bestBidPrice=fmt(bid),
        bestAskPrice=fmt(ask),
        lastPrice=fmt((bid + ask) / 2),
        oraclePrice=fmt(oracle),
        indexPrice=fmt(oracle),
    )
    return row
