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
