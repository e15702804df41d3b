"""``acme plugins``: installed backends, stores and cluster setups, and where they come from."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from acme_core.cli._common import EXIT_OK, EXIT_PROBLEM, emit, table

__all__ = ["add_parser", "plugin_report"]


def _distribution_of(obj: Any) -> str:
    """``"acme-core 0.1.0"``: the installed distribution that provides ``obj``'s module."""
    from importlib.metadata import packages_distributions, version

    module = getattr(obj, "__module__", None) or ""
    top = module.split(".")[0]
    names = packages_distributions().get(top, [])
    if not names:
        return "(not from an installed distribution)"
    parts = []
    for name in sorted(set(names)):
        try:
            parts.append(f"{name} {version(name)}")
        except Exception:
            parts.append(name)
    return ", ".join(parts)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def plugin_report() -> dict[str, Any]:
    """What ``acme plugins`` reports, as a JSON-able dict."""
    from importlib.metadata import entry_points

    from acme_core import plugins

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backends = plugins.list_backends()
        stores = plugins.list_stores()
        setups = plugins.list_cluster_setups()
        failed = plugins.failed_plugins()
        try:
            choice = plugins.auto_backend()
            auto_text = f"{choice.backend!r} here and now (chosen by {choice.plugin!r})"
        except Exception as exc:
            auto_text = f"unknown: a plugin's acme_auto_backend failed ({exc})"
    autoload = not plugins.autoload_disabled()
    blocked = plugins.blocked_plugins()
    loaded = []
    for ep in sorted(entry_points(group=plugins.ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        state = ("failed" if ep.name in failed else "blocked" if ep.name in blocked
                 else "not loaded" if not autoload else "loaded")
        loaded.append({"name": ep.name, "value": ep.value, "state": state,
                       "distribution": f"{dist.name} {dist.version}" if dist else "?"})

    def rows(mapping: dict[str, Any]) -> list[dict[str, str]]:
        return [{"name": name, "object": _qualname(obj), "distribution": _distribution_of(obj)}
                for name, obj in mapping.items()]

    return {
        "backends": rows(backends), "stores": rows(stores), "cluster_setups": rows(setups),
        "auto_backend": auto_text, "entry_points": loaded, "autoload": autoload,
        "failed": failed, "warnings": [str(w.message) for w in caught],
    }


def _render_plugins(r: dict[str, Any]) -> str:
    out = []
    for key, title in (("backends", "Backends (ParallelMap(backend=NAME))"),
                       ("stores", "Stores (ParallelMap(store=NAME))"),
                       ("cluster_setups", "Cluster setups (acme_core.list_cluster_setups())")):
        out.append(title)
        out.append(table([[e["name"], e["object"], e["distribution"]] for e in r[key]]))
    out.append(f'backend="auto" uses {r["auto_backend"]}')
    out.append("Plugins of the 'acme' entry-point group")
    if not r["autoload"]:
        out.append("  none loaded: ACME_DISABLE_PLUGIN_AUTOLOAD is set")
    if r["entry_points"]:
        out.append(table([[e["name"], e["value"], e["distribution"], e["state"]]
                           for e in r["entry_points"]]))
    elif r["autoload"]:
        out.append("  (none installed)")
    if r["failed"]:
        out.append("Plugins that failed to load (skipped)")
        out.extend(f"  {name}: {error}" for name, error in sorted(r["failed"].items()))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    report = plugin_report()
    emit(report, args.json, _render_plugins)
    return EXIT_PROBLEM if report["failed"] else EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acme plugins`` to the command line."""
    parser = sub.add_parser(
        "plugins", help="installed backends, stores, cluster setups",
        description="List the installed backends, stores and cluster setups with the "
                    "distribution each comes from, and the plugins that failed to load (exit "
                    "code 1 if any).")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
