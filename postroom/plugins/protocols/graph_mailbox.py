"""The ``graph`` protocol's mailbox: a folder read by Graph's delta query, mails downloaded as MIME.

Listing uses ``GET /users/{id}/mailFolders/{folder}/messages/delta``: the first cycle lists the
whole folder (or, with "fetch the last N days", what was received since, the one ``$filter`` delta
allows), later cycles follow the ``@odata.deltaLink`` and list only what changed. The link is
handed to the core as the mailbox's sync state, which saves it only after every listed mail is
stored (and deleted): a crash before that replays the same changes, which the fetch ledger skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any
from urllib.parse import quote

from postroom.plugins.protocols.base import ConnectionSettings, FetchedMail, Mailbox, MailRef, ProtocolError
from postroom.plugins.protocols.graph_client import IMMUTABLE_IDS, GraphClient, GraphError

#: Graph's well-known folder names, by the names an operator may type (case-insensitive). Any other
#: folder is named by its Graph folder id.
WELL_KNOWN = {
    "inbox": "inbox",
    "sent items": "sentitems",
    "sentitems": "sentitems",
    "sent": "sentitems",
    "drafts": "drafts",
    "deleted items": "deleteditems",
    "deleteditems": "deleteditems",
    "junk email": "junkemail",
    "junkemail": "junkemail",
    "junk": "junkemail",
    "archive": "archive",
    "outbox": "outbox",
}
#: Messages per delta page (``Prefer: odata.maxpagesize``); Graph's own default is 10.
PAGE_SIZE = 100
#: What a delta page returns of each message: the id always comes; the date sorts the listing.
SELECT = "receivedDateTime"


def folder_id(name: str | None) -> str:
    """Graph's name for a folder: a well-known name, else the folder id as given."""
    given = (name or "Inbox").strip()
    return WELL_KNOWN.get(given.casefold(), given)


class GraphMailbox(Mailbox):
    """A folder of the profile's mailbox (``username``), read through Microsoft Graph."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._client = GraphClient(settings)
        self._folder = folder_id(settings.folder)
        self._saved = _parse_state(settings.sync_state)
        self._next_state: str | None = None

    def _folder_url(self) -> str:
        return f"/mailFolders/{quote(self._folder, safe='')}"

    def list_mail(self, since: date | None) -> list[MailRef]:
        """The folder's new messages by delta query, oldest first (every message on a first cycle)."""
        since_text = since.isoformat() if since is not None else None
        link = self._usable_link(since_text)
        try:
            items, delta_link = self._delta(link or self._initial_url(since_text))
        except GraphError as error:
            if link is None or error.status not in (400, 404, 410):
                raise self._client.describe(error, f"listing folder {self._folder!r}") from error
            # The saved link expired or was refused (Graph: 410 syncStateNotFound): list afresh;
            # the fetch ledger skips what was stored before.
            try:
                items, delta_link = self._delta(self._initial_url(since_text))
            except GraphError as again:
                raise self._client.describe(again, f"listing folder {self._folder!r}") from again
        items.sort(key=lambda item: str(item.get("receivedDateTime") or ""))
        state = {"folder": self._folder, "since": since_text, "link": delta_link}
        self._next_state = json.dumps(state, separators=(",", ":"))
        return [MailRef(key=str(item["id"])) for item in items]

    def _usable_link(self, since: str | None) -> str | None:
        """The saved delta link, unless it belongs to another folder or filters more than now wanted."""
        saved = self._saved
        if not saved or saved.get("folder") != self._folder or not isinstance(saved.get("link"), str):
            return None
        saved_since = saved.get("since")
        if saved_since is not None and (since is None or since < saved_since):
            return None  # the link would never list the older mail the profile now asks for
        return str(saved["link"])

    def _initial_url(self, since: str | None) -> str:
        url = f"{self._client.user_url}{self._folder_url()}/messages/delta?$select={SELECT}"
        if since is not None:
            url += f"&$filter=receivedDateTime+ge+{since}T00:00:00Z"
        return url

    def _delta(self, url: str) -> tuple[list[dict[str, Any]], str]:
        """Follow ``@odata.nextLink`` pages to the ``@odata.deltaLink``; the added or changed messages."""
        headers = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={PAGE_SIZE}"}
        items: dict[str, dict[str, Any]] = {}
        while True:
            page = self._client.json("GET", url, headers=headers)
            for item in page.get("value") or []:
                if not isinstance(item, dict) or "id" not in item:
                    continue
                if "@removed" in item:
                    items.pop(str(item["id"]), None)  # gone (deleted or moved out): nothing to fetch
                else:
                    items[str(item["id"])] = item
            if isinstance(page.get("@odata.nextLink"), str):
                url = page["@odata.nextLink"]
                continue
            if isinstance(page.get("@odata.deltaLink"), str):
                return list(items.values()), page["@odata.deltaLink"]
            raise ProtocolError(
                f"{self._client.where()} ended a delta listing of folder {self._folder!r} without a link.",
                "protocol",
            )

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        """Each message's MIME (``$value``), untouched, through the same parser as every protocol's."""
        for key in keys:
            try:
                response = self._client.request("GET", f"/messages/{quote(key, safe='')}/$value")
            except GraphError as error:
                if error.status == 404:
                    continue  # deleted meanwhile
                raise self._client.describe(error, "downloading a message") from error
            yield FetchedMail(key=key, raw=response.content)

    def delete(self, keys: Sequence[str]) -> None:
        """``DELETE`` each message: Exchange Online moves it to Recoverable Items, not Deleted Items.

        Like the ``ews`` protocol's soft delete: a busy support mailbox neither fills Deleted Items
        nor its quota, and an administrator can still recover a mail until the retention period
        (14 days by default) ends. Already gone (404) is what was wanted.
        """
        for key in keys:
            try:
                self._client.request("DELETE", f"/messages/{quote(key, safe='')}")
            except GraphError as error:
                if error.status != 404:
                    raise self._client.describe(error, "deleting a fetched message") from error

    def check(self) -> None:
        try:
            self._client.json("GET", f"{self._folder_url()}?$select=id,displayName")
        except GraphError as error:
            if error.status == 404:
                raise ProtocolError(
                    f"The folder {self._folder!r} does not exist in the mailbox {self._client.user!r} on "
                    f"{self._client.where()}.",
                    "folder",
                ) from error
            raise self._client.describe(error, f"opening folder {self._folder!r}") from error

    def sync_state(self) -> str | None:
        return self._next_state

    def close(self) -> None:
        self._client.close()


def _parse_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
