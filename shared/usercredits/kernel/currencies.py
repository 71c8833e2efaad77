"""ISO 4217 currency codes (lower case, as Stripe spells them) and their minor-unit exponents."""

from __future__ import annotations

_CODES = (
    "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp byn bzd cad cdf chf "
    "clp cny cop crc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp gel ghs gip gmd gnf gtq gyd hkd hnl htg "
    "huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga "
    "mkd mmk mnt mop mru mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd "
    "rub rwf sar sbd scr sdg sek sgd shp sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah "
    "ugx usd uyu uzs ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl"
)
KNOWN_CURRENCIES = frozenset(_CODES.split())
_ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
_THREE_DECIMAL = frozenset(["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"])


def is_known_currency(code: str) -> bool:
    """True for an ISO 4217 code written in lower case."""
    return code in KNOWN_CURRENCIES


def minor_unit_exponent(code: str) -> int:
    """Digits after the decimal point: 0 for jpy, 3 for kwd, 2 otherwise."""
    if code in _ZERO_DECIMAL:
        return 0
    return 3 if code in _THREE_DECIMAL else 2
