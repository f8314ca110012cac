"""A small synchronous client of the node's HTTP API (what the CLI uses).

Plain ``urllib``: one request per call, no event loop, no session to
close. Every failure is an ``ApiError`` carrying the server's error code and
message (or ``unreachable`` / ``bad_response`` when there is no usable
answer), so a caller can print one line and exit.

With ``$LC_API_TOKEN`` set, every request carries ``Authorization: Bearer <token>``
(the node's ``[api] token_file``; writes need it on a node that has one, [API-AUTH.*]).
An upload the node answers 429 (per-client limits, [API-UPLOAD.4]) is sent again after
its ``Retry-After``, when that is at most ``UPLOAD_RETRY_MAX_S``.

[NODE-READ.2] Every request's ``timeout`` is its whole deadline, not each read's: a node
that drips its answer is cut there (``client.api.fetch``); answers are bounded
(``MAX_ANSWER_BYTES``, a download by its ``max_bytes``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, address_to_text
from chain.transactions import Body, SignedTransaction, sign_transaction
from client.api.fetch import FetchError, fetch

DEFAULT_NODE = "http://127.0.0.1:8601"
NODE_ENV = "LC_NODE"
TOKEN_ENV = "LC_API_TOKEN"
"""The node's API token (``client.api.token_file.TOKEN_ENV``; never taken from argv)."""
UPLOAD_RETRY_MAX_S = 120
UPLOAD_RETRIES = 3
CHUNK = 1024 * 1024
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""[NODE-READ.2] The most of one JSON answer (or raw block) the client reads from a node."""
UNREACHABLE_RETRY_S = 1.0
"""``wait_for_tx``: while the node does not answer, ask again this often."""
DOWNLOAD_BASE_S = 300.0
DOWNLOAD_MIN_RATE = 1024 * 1024
"""[NODE-READ.2] A blob download's whole deadline: ``DOWNLOAD_BASE_S`` plus its size bound
at this many bytes a second."""
MAX_DOWNLOAD_BYTES = 4 * 1024**3
"""[NODE-READ.2] A download without a tighter bound: the node's largest upload."""
NONCE_ATTEMPTS = 5
"""``sign_and_submit``: how often a transaction is signed again after losing its nonce to
another client of the same key."""

Json = dict[str, Any]
Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) as a transfer goes on."""


class ApiError(Exception):
    """What the node said no with (or why no answer came)."""

    def __init__(self, code: str, message: str, status: int = 0,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        """A 429's or 503's ``Retry-After`` in seconds, when it sent one."""


def default_node_url() -> str:
    return os.environ.get(NODE_ENV) or DEFAULT_NODE


class ApiClient:
    """Typed calls to one node's ``/api/v1``; see ``client.api.openapi`` for every shape."""

    def __init__(self, base_url: str | None = None, *, timeout: float = 30.0,
                 token: str | None = None) -> None:
        url = (base_url or default_node_url()).rstrip("/")
        if "://" not in url:
            url = "http://" + url
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ApiError("bad_url", f"not an http(s) node URL: {base_url!r}")
        self.base_url = url
        self.timeout = timeout
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or "").strip()
        """Sent as ``Authorization: Bearer`` when not empty (default: ``$LC_API_TOKEN``)."""
        self._chain_id: str | None = None

    # -- plumbing ---------------------------------------------------------------------

    def _url(self, path: str, query: dict[str, Any] | None = None) -> str:
        url = f"{self.base_url}/api/v1{path}"
        if query:
            clean = {k: v for k, v in query.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean)
        return url

    def _authorize(self, request: urllib.request.Request) -> None:
        if self.token:
            if not all("!" <= c <= "~" for c in self.token):
                raise ApiError("bad_token", f"${TOKEN_ENV} must be the node's token: visible "
                                            "ASCII characters, no spaces")
            request.add_header("Authorization", f"Bearer {self.token}")

    def _said_no(self, error: ApiError) -> ApiError:
        if error.status == 401 and not self.token:
            return ApiError(error.code, f"{error.message} (${TOKEN_ENV} is not set)",
                            error.status)
        return error

    def _fetch(self, request: urllib.request.Request, deadline_s: float, *,
               max_bytes: int | None = None, sink: Callable[[bytes], None] | None = None,
               on_headers: Callable[[Any], None] | None = None) -> bytes:
        """[NODE-READ.2] The whole body of a 2xx answer within ``deadline_s`` (connection,
        headers and body: a node that drips its answer is cut there) and ``max_bytes``
        (default ``MAX_ANSWER_BYTES``); else ``ApiError``: the node's own error,
        ``unreachable`` or ``bad_response``."""
        self._authorize(request)
        try:
            got = fetch(request, deadline_s=deadline_s,
                        max_bytes=MAX_ANSWER_BYTES if max_bytes is None else max_bytes,
                        read_timeout_s=self.timeout, sink=sink, on_headers=on_headers)
        except FetchError as e:
            if e.code == "fetch_failed":
                raise ApiError("unreachable", f"cannot reach the node at {self.base_url}: "
                                              f"{e.reason}") from None
            raise ApiError("bad_response" if e.code == "fetch_too_large" else "unreachable",
                           f"no whole answer from the node at {self.base_url}: {e}") from None
        if got.status >= 400:
            raise self._said_no(_error_of(got.status, got.reason, got.headers,
                                          got.body)) from None
        return got.body

    def _open(self, request: urllib.request.Request, timeout: float | None = None) -> Any:
        self._authorize(request)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise self._said_no(_api_error(e)) from None
        except urllib.error.URLError as e:
            raise ApiError("unreachable",
                           f"cannot reach the node at {self.base_url}: {e.reason}") from None
        except (TimeoutError, ConnectionError, OSError) as e:
            raise ApiError("unreachable",
                           f"no answer from the node at {self.base_url}: {e}") from None

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                data: bytes | None = None, content_type: str | None = None,
                timeout: float | None = None) -> Any:
        """One JSON request; returns the decoded body. [NODE-READ.2] ``timeout`` (default
        the client's) is the whole request's deadline, and the answer is at most
        ``MAX_ANSWER_BYTES``."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self._url(path, query), data=data, method=method,
                                     headers=headers)
        raw = self._fetch(req, timeout or self.timeout)
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError("bad_response", f"the node sent non-JSON for {path}") from None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    # -- node and chain ------------------------------------------------------------------

    def status(self) -> Json:
        return dict(self.get("/status"))

    def chain_id(self) -> str:
        """The chain id transactions are signed for; refused unless 1..64 characters of UTF-8."""
        if self._chain_id is None:
            chain_id = self.status()["chain_id"]
            try:
                ok = isinstance(chain_id, str) and 1 <= len(chain_id) <= 64 \
                    and bool(chain_id.encode("utf-8"))
            except UnicodeEncodeError:
                ok = False
            if not ok:
                raise ApiError("bad_response", f"the node's chain id is not valid: "
                                               f"{str(chain_id)[:80]!r}")
            self._chain_id = chain_id
        return self._chain_id

    def peers(self) -> list[Json]:
        return list(self.get("/peers"))

    def params(self) -> Json:
        return dict(self.get("/params"))

    def blocks(self, start: int | None = None, limit: int = 20, order: str = "desc") -> Json:
        return dict(self.get("/blocks", **{"from": start, "limit": limit, "order": order}))

    def block(self, height: int) -> Json:
        return dict(self.get(f"/blocks/{int(height)}"))

    def block_raw(self, height: int) -> bytes:
        req = urllib.request.Request(self._url(f"/blocks/{int(height)}/raw"))
        return self._fetch(req, self.timeout)

    def tx(self, tx_hash: str | bytes) -> Json:
        return dict(self.get(f"/txs/{_hex(tx_hash)}"))

    def submit(self, tx: SignedTransaction | bytes) -> str:
        """Posts a signed transaction; returns its hash (hex). Rejections raise ``ApiError``."""
        wire = tx.wire if isinstance(tx, SignedTransaction) else bytes(tx)
        doc = self.request("POST", "/txs", data=wire, content_type="application/octet-stream")
        return str(doc["hash"])

    def account(self, address: str | bytes) -> Json:
        text = address if isinstance(address, str) else address_to_text(address)
        return dict(self.get(f"/accounts/{_hex(text)}"))

    def jobs(self, status: str | None = None, submitter: str | None = None,
             limit: int = 100) -> Json:
        return dict(self.get("/jobs", status=status, submitter=submitter, limit=limit))

    def job(self, job_id: str | bytes) -> Json:
        return dict(self.get(f"/jobs/{_hex(job_id)}"))

    def leaderboard(self, job_id: str | bytes) -> Json:
        return dict(self.get(f"/jobs/{_hex(job_id)}/leaderboard"))

    def job_logs(self, job_id: str | bytes, tail: int | None = None) -> Json:
        """[API-JOBLOG.1] The node's own worker attempts on a job (failed ones with output)."""
        return dict(self.get(f"/jobs/{_hex(job_id)}/logs", tail=tail))

    def job_queue(self, job_id: str | bytes) -> Json:
        """[API-QUEUE.1] Where an open job stands in the workers' order, and why."""
        return dict(self.get(f"/jobs/{_hex(job_id)}/queue"))

    def validators(self) -> Json:
        return dict(self.get("/validators"))

    def members(self) -> Json:
        return dict(self.get("/members"))

    def proposals(self) -> Json:
        return dict(self.get("/proposals"))

    def genesis(self) -> Json:
        """``{"hash", "genesis"}``: the genesis document the node runs [API-GENESIS.1]."""
        return dict(self.get("/genesis"))

    def supply(self) -> Json:
        """Supply, balances, escrowed and burned at the committed height [API-SUPPLY.1]."""
        return dict(self.get("/supply"))

    def models(self) -> Json:
        """``{"height", "models"}``: every deployed model [API-PREDICT.1]."""
        return dict(self.get("/models"))

    def model(self, job_id: str | bytes) -> Json:
        """One deployed model and its latest requests [API-PREDICT.2]."""
        return dict(self.get(f"/models/{_hex(job_id)}"))

    def prediction(self, request_id: str | bytes) -> Json:
        """One prediction request through its phases [API-PREDICT.3]."""
        return dict(self.get(f"/predictions/{_hex(request_id)}"))

    def federated_jobs(self) -> Json:
        """``{"height", "jobs"}``: every federated job [API-FED.1]."""
        return dict(self.get("/federated"))

    def federated_job(self, job_id: str | bytes) -> Json:
        """One federated job: its rounds, end ballot and payout [API-FED.2] [API-FED.3]."""
        return dict(self.get(f"/federated/{_hex(job_id)}"))

    def openapi(self) -> Json:
        return dict(self.get("/openapi.json"))

    def wait(self, height: int, timeout: float = 30.0) -> Json:
        """Long poll: returns when the chain reaches ``height`` or ``timeout`` passes."""
        return dict(self.request("GET", "/wait", query={"height": height, "timeout": timeout},
                                 timeout=timeout + self.timeout))

    # -- blobs -------------------------------------------------------------------------

    def upload_blob(self, path: Path, progress: Progress | None = None) -> Json:
        """Streams a file to the node's blob store; returns ``{"blob": hex, "size": n}``."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            done = 0
            with path.open("rb") as f:
                while data := f.read(CHUNK):
                    done += len(data)
                    yield data
                    if progress is not None:
                        progress(done, size)

        if size > CHUNK:
            self._check_upload_access()
        for attempt in range(UPLOAD_RETRIES + 1):
            req = urllib.request.Request(
                self._url("/blobs"), data=chunks(), method="POST",
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size), "Accept": "application/json"})
            try:
                with self._open(req, timeout=max(self.timeout, 300.0)) as resp:
                    return dict(json.loads(resp.read(MAX_ANSWER_BYTES)))
            except ApiError as e:
                wait = e.retry_after
                if e.status != 429 or wait is None or wait > UPLOAD_RETRY_MAX_S \
                        or attempt == UPLOAD_RETRIES:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _check_upload_access(self) -> None:
        """An empty upload first: a node that wants a token (or another one) says so at
        once, where a refused long upload could end in a reset connection [API-AUTH.6]."""
        try:
            self.request("POST", "/blobs", data=b"", content_type="application/octet-stream")
        except ApiError as e:
            if e.code != "empty_blob":
                raise

    def has_blob(self, blob: str | bytes) -> bool:
        """Whether the node stores the blob itself (peers are not asked)."""
        try:
            self.get(f"/blobs/{_hex(blob)}/info")
        except ApiError as e:
            if e.code == "blob_not_here":
                return False
            raise
        return True

    def download_blob(self, blob: str | bytes, dest: Path, progress: Progress | None = None,
                      max_bytes: int = MAX_DOWNLOAD_BYTES) -> int:
        """Streams a blob into ``dest`` (written whole or not at all); returns its size.

        [NODE-READ.2] At most ``max_bytes`` (a larger blob is refused, ``bad_response``),
        within a whole deadline of ``DOWNLOAD_BASE_S`` plus ``max_bytes`` at
        ``DOWNLOAD_MIN_RATE``."""
        req = urllib.request.Request(self._url(f"/blobs/{_hex(blob)}"))
        partial = dest.with_name(dest.name + ".partial")
        done = total = 0
        try:
            with partial.open("wb") as out:

                def sized(headers: Any) -> None:
                    nonlocal total
                    length = str(headers.get("Content-Length") or "0")
                    total = int(length) if length.isdigit() else 0

                def write(data: bytes) -> None:
                    nonlocal done
                    out.write(data)
                    done += len(data)
                    if progress is not None:
                        progress(done, total)

                self._fetch(req, DOWNLOAD_BASE_S + max_bytes / DOWNLOAD_MIN_RATE,
                            max_bytes=max_bytes, sink=write, on_headers=sized)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return done

    # -- helpers built on the calls ---------------------------------------------------------

    def sign(self, key: PrivateKey, body: Body) -> SignedTransaction:
        """Signs ``body`` for this chain with the key's next nonce (pending ones counted)."""
        nonce = int(self.account(key.address)["next_nonce"])
        return sign_transaction(key, self.chain_id(), nonce, body)

    def sign_and_submit(self, key: PrivateKey, body: Body,
                        attempts: int = NONCE_ATTEMPTS) -> SignedTransaction:
        """``sign`` then ``submit``; signed again with the next nonce when another client of
        the same key took this one between the two (``bad_nonce``: two terminals, a wallet
        and a script). A transaction refused for its nonce is not pending anywhere, so the
        new one cannot apply twice. Other rejections raise at once."""
        for attempt in range(attempts):
            tx = self.sign(key, body)
            try:
                self.submit(tx)
                return tx
            except ApiError as e:
                if e.code != "bad_nonce" or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def wait_for_tx(self, tx_hash: str | bytes, timeout: float = 60.0) -> Json:
        """Waits until a transaction is committed; returns its ``committed`` record.

        Raises ``ApiError`` (``tx_dropped``) when the node no longer knows it and
        (``tx_timeout``) when it is still pending after ``timeout`` seconds. A node that
        does not answer for a while (a restart, a machine short of CPU) is asked again
        until ``timeout``; then its ``unreachable`` error is raised.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.tx(tx_hash)
                if info.get("status") == "committed":
                    return info
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ApiError("tx_timeout", f"transaction {_hex(tx_hash)} still pending "
                                                 f"after {timeout:g} s")
                self.wait(int(info.get("chain_height", 0)) + 1, timeout=min(left, 10.0))
            except ApiError as e:
                if e.code == "unknown_tx":
                    raise ApiError("tx_dropped", "the node dropped the transaction before it "
                                                 "was included (re-check and resend)") from None
                left = deadline - time.monotonic()
                if e.code != "unreachable" or left <= 0:
                    raise
                time.sleep(min(UNREACHABLE_RETRY_S, left))


def _hex(value: str | bytes) -> str:
    """A path segment: bytes as hex, text percent-quoted (a lone surrogate cannot crash it)."""
    return value.hex() if isinstance(value, bytes) else urllib.parse.quote(
        value, safe="", errors="backslashreplace")


def _api_error(e: urllib.error.HTTPError) -> ApiError:
    try:
        body = e.read(MAX_ANSWER_BYTES)
    except OSError:
        body = b""
    return _error_of(e.code, str(e.reason), e.headers, body)


def _error_of(status: int, reason: str, headers: Any, body: bytes) -> ApiError:
    """The node's ``{"error": {"code", "message"}}``, else ``http_<status>``."""
    retry_after = _seconds(headers.get("Retry-After") if headers else None)
    try:
        doc = json.loads(body)
        err = doc["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return ApiError(f"http_{status}", f"the node answered {status} {reason}", status,
                        retry_after)
    return ApiError(code, message, status, retry_after)


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` of delay-seconds (an HTTP date is not used by the node)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None
