"""acme-compat and esi-acme (ACME itself) cannot share an environment: both are ``acme``.

pip knows nothing of the clash: installing one after the other writes both into the
same ``site-packages/acme/`` directory (the later one's files win, the earlier one's
other modules stay), and uninstalling either removes files the other needs. So the
package refuses to be imported when the ``esi-acme`` distribution is installed, and
says what to do.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["ESI_ACME", "EsiAcmeInstalledError", "refuse_next_to_esi_acme"]

#: ACME's distribution name on PyPI and conda-forge
ESI_ACME = "esi-acme"


class EsiAcmeInstalledError(ImportError):
    """``import acme`` found the ``esi-acme`` distribution next to acme-compat.

    A plain ``ImportError``: the check runs before anything else is imported, so it
    speaks even when acme-core itself cannot be imported.
    """


def refuse_next_to_esi_acme() -> None:
    """Raise :class:`EsiAcmeInstalledError` when ``esi-acme`` is installed.

    Raises
    ------
    EsiAcmeInstalledError
        Naming the esi-acme version and location and the two ways out.
    """
    try:
        theirs = importlib.metadata.distribution(ESI_ACME)
    except importlib.metadata.PackageNotFoundError:
        return
    where = theirs.locate_file("")
    raise EsiAcmeInstalledError(
        f"`import acme` refused: esi-acme {theirs.version} (ACME itself, installed in {where}) "
        "and acme-compat (ACME's names on acme-core) both provide the import name `acme`, "
        "and one environment can hold only one of them. Keep one, and reinstall it after "
        "removing the other (both wrote into the same acme/ directory, so uninstalling one "
        "removes files of the other):\n"
        "  - to run ACME code on acme-core: `pip uninstall esi-acme`, then "
        "`pip install --force-reinstall --no-deps acme-compat`;\n"
        "  - to keep ACME: `pip uninstall acme-compat`, then "
        "`pip install --force-reinstall --no-deps esi-acme`.\n"
        "Code moved to acme-core proper imports `acme_core` and is not affected.",
        name="acme")
