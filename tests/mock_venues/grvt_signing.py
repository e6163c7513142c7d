"""How the loopback GRVT venue checks an order's EIP-712 signature, written from GRVT's order
type (the SDK's ``EIP712_ORDER_MESSAGE_TYPE`` fields, domain "GRVT Exchange" version "0") and
not through the client's signing code: the full typed-data document is assembled here and the
signer recovered with eth_account, so a client that signs the wrong bytes is caught.

Checks, each answered with the venue's error code (api-spec error tables):

* 1012 a ``chain_id`` that is not the venue's; 2005 ``v`` not 27/28; 2006 ``r``/``s`` not 32
  bytes of hex;
* 2001 an expiration already past; 2008 one further out than 30 days;
* 2065 a size that is not whole at the instrument's base decimals, 2064 a price that is not
  whole at 9 decimals (the signed integers would differ from the order's amounts);
* 2002 a signature recovering to another address than ``signer``; 2000 a ``signer`` that is not
  the account's key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from helpers import safe_json

with safe_json.recursion_limit_kept():  # eth-account's py_ecc raises it (see exchanges/grvt_wire.py)
    from eth_account import Account
    from eth_account.messages import encode_typed_data

NANOS = 1_000_000_000
MAX_EXPIRY_NS = 30 * 86_400 * NANOS
TIME_IN_FORCE_CODES = {"GOOD_TILL_TIME": 1, "ALL_OR_NONE": 2, "IMMEDIATE_OR_CANCEL": 3, "FILL_OR_KILL": 4}
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Order": [
        {"name": "subAccountID", "type": "uint64"},
        {"name": "isMarket", "type": "bool"},
        {"name": "timeInForce", "type": "uint8"},
        {"name": "postOnly", "type": "bool"},
        {"name": "reduceOnly", "type": "bool"},
        {"name": "legs", "type": "OrderLeg[]"},
        {"name": "nonce", "type": "uint32"},
        {"name": "expiration", "type": "int64"},
    ],
    "OrderLeg": [
        {"name": "assetID", "type": "uint256"},
        {"name": "contractSize", "type": "uint64"},
        {"name": "limitPrice", "type": "uint64"},
        {"name": "isBuyingContract", "type": "bool"},
    ],
}


class SignatureRefused(Exception):
    """The venue's refusal: ``code`` and ``message`` as in its error tables (HTTP ``status``)."""

    def __init__(self, code: int, message: str, status: int = 403) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SigningInstrument:
    name: str
    asset_id: int
    base_decimals: int


def _whole(value: Any, decimals: int, code: int, what: str) -> int:
    try:
        number = Decimal(str(value)).scaleb(decimals)
    except InvalidOperation:
        raise SignatureRefused(2002, f"{what} is not a number", 400) from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise SignatureRefused(code, f"{what} does not fit its signed precision", 400)
    return int(number)


def verify_order(
    order: Mapping[str, Any],
    *,
    chain_id: int,
    instruments: Mapping[str, SigningInstrument],
    expected_signer: str,
    now_ns: int,
) -> None:
    """Raise :class:`SignatureRefused` unless ``order`` (a create_order ``order`` object) is
    signed by ``expected_signer`` for this chain, unexpired and within the venue's cap."""
    signature = order.get("signature")
    if not isinstance(signature, Mapping):
        raise SignatureRefused(2002, "Signature does not match payload")
    if str(signature.get("chain_id", chain_id)) != str(chain_id):
        raise SignatureRefused(1012, "Invalid signature chain ID", 400)
    v = signature.get("v")
    if v not in (27, 28, "27", "28"):
        raise SignatureRefused(2005, "Signature V must be 27/28")
    r, s = str(signature.get("r") or ""), str(signature.get("s") or "")
    if not (re.fullmatch(r"0x[0-9a-fA-F]{64}", r) and re.fullmatch(r"0x[0-9a-fA-F]{64}", s)):
        raise SignatureRefused(2006, "Signature R/S must have exactly 64 characters long without 0x prefix")
    try:
        expiration = int(str(signature.get("expiration")))
        nonce = int(str(signature.get("nonce")))
    except ValueError:
        raise SignatureRefused(2002, "Signature does not match payload") from None
    if expiration <= now_ns:
        raise SignatureRefused(2001, "Signature has expired")
    if expiration > now_ns + MAX_EXPIRY_NS:
        raise SignatureRefused(2008, "Signature exceeds maximum allowed duration.")
    legs = []
    for leg in order.get("legs") or []:
        instrument = instruments.get(str(leg.get("instrument")))
        if instrument is None:
            raise SignatureRefused(2061, "Unsupported Instrument Requested", 400)
        legs.append(
            {
                "assetID": instrument.asset_id,
                "contractSize": _whole(leg.get("size"), instrument.base_decimals, 2065, "size"),
                "limitPrice": _whole(leg.get("limit_price") or "0", 9, 2064, "limit_price"),
                "isBuyingContract": leg.get("is_buying_asset") is True,
            }
        )
    message = {
        "subAccountID": int(str(order.get("sub_account_id"))),
        "isMarket": order.get("is_market") is True,
        "timeInForce": TIME_IN_FORCE_CODES.get(str(order.get("time_in_force")), 0),
        "postOnly": order.get("post_only") is True,
        "reduceOnly": order.get("reduce_only") is True,
        "legs": legs,
        "nonce": nonce,
        "expiration": expiration,
    }
    typed = {
        "types": TYPES,
        "primaryType": "Order",
        "domain": {"name": "GRVT Exchange", "version": "0", "chainId": chain_id},
        "message": message,
    }
    try:
        recovered = Account.recover_message(
            encode_typed_data(full_message=typed), vrs=(int(str(v)), int(r, 16), int(s, 16))
        )
    except Exception:  # eth_account raises several types for a signature that is not one
        raise SignatureRefused(2002, "Signature does not match payload") from None
    if recovered.lower() != str(signature.get("signer") or "").lower():
        raise SignatureRefused(2002, "Signature does not match payload")
    if recovered.lower() != expected_signer.lower():
        raise SignatureRefused(2000, "Signature is from an unauthorized signer")
