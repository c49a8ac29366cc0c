"""Locating char-level tiny Shakespeare: an explicit path, an env var, or a verified download.

Order (docs/theory.md §10; the project never ships the file):

1. the preset's ``data_path`` (the CLI's ``--data PATH``);
2. the environment variable ``STABCLI_SHAKESPEARE`` (a path);
3. the user cache (``$XDG_CACHE_HOME/stabcli/data`` on Linux, via platformdirs), filled on
   first use by pooch from ``STABCLI_SHAKESPEARE_URL`` (default: karpathy/char-rnn) and
   checked against the known sha256.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pooch

from stabcli.errors import SettingError, StabcliError

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
DEFAULT_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
ENV_PATH = "STABCLI_SHAKESPEARE"
ENV_URL = "STABCLI_SHAKESPEARE_URL"
FILENAME = "tinyshakespeare.txt"
#: Advice in errors; ``{data_path}`` names the setting (a SettingError template).
HOW_TO_PROVIDE = (
    f"download input.txt yourself (sha256 {SHA256[:12]}...) and pass it as {{data_path}} "
    f"or set {ENV_PATH}=PATH"
)


def cache_dir() -> Path:
    """Where the download is kept (platformdirs honours XDG_CACHE_HOME)."""
    return Path(platformdirs.user_cache_dir("stabcli")) / "data"


def shakespeare_path(data_path: str | None = None) -> Path:
    """Path of a readable tiny Shakespeare file, downloading it if needed."""
    for given, origin in ((data_path, "{data_path}"), (os.environ.get(ENV_PATH), ENV_PATH)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                why = "is not a file" if path.exists() else "does not exist"
                raise SettingError(
                    "tiny Shakespeare file {path} (from " + origin + ") " + why, path=path
                )
            return path
    url = os.environ.get(ENV_URL) or DEFAULT_URL
    logger = pooch.get_logger()  # pooch builds its own Logger, outside logging.getLogger
    was_disabled, logger.disabled = logger.disabled, True  # failures become our own error
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"sha256:{SHA256}",
            fname=FILENAME,
            path=cache_dir(),
            progressbar=False,
        )
    except ValueError as err:  # pooch reports a hash mismatch as ValueError
        if "hash" not in str(err).lower():
            raise StabcliError(f"cannot download tiny Shakespeare from {url}: {err}") from None
        raise SettingError(
            "tiny Shakespeare from {url} failed its sha256 check; " + HOW_TO_PROVIDE, url=url
        ) from None
    except Exception as err:  # network errors come from requests, OSError, ...
        raise SettingError(
            "cannot download tiny Shakespeare from {url} ({reason}); " + HOW_TO_PROVIDE,
            url=url,
            reason=type(err).__name__,
        ) from None
    finally:
        logger.disabled = was_disabled
    return Path(fetched)
