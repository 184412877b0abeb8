"""A profile's OAuth2 sign-in with Microsoft or Google: status, connect, disconnect (``postroom oauth ...``).

Which flows a browser page runs: Microsoft's client credentials and Google's service account need no
person (the page posts the id and secret, the provider answers at once), and Microsoft's device
code fits a browser well: the page shows the address and the code, the operator signs in there
(from any machine), and the console keeps polling in a thread of its own and stores the grant when
Microsoft answers; the OAuth2 page shows "waiting" until then. Google's installed-app flow is not
offered here: its redirect goes to a loopback port on the machine running the sign-in, which is
the console's server, not the operator's browser; run ``postroom oauth connect --flow installed-app``
on that machine instead (the page says so).

The sign-in is the provider plugin's own ``connect`` (found through the plugin host, so a disabled
provider cannot be used); secrets are write-only fields, and neither shown nor written to the log.
A sign-in waiting for its device code lives in this process's memory: another ``postroom web``
process behind the same address does not see it (the stored grant, once saved, every process does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.data import oauth
from postroom.core.data.profiles import get_profile
from postroom.web.audit import record
from postroom.web.auth import operator_required
from postroom.web.operator import bp
from postroom.web.operator.profile_pages import CONTACT_CENTER, actor, find_profile
from postroom.web.state import postroom_app, transaction

#: The flows this page runs (see the module's docstring for installed-app).
FLOWS = ("client-credentials", "device-code", "service-account")
#: How long a post waits for the provider's first word (the device code, or the finished sign-in).
FIRST_ANSWER_SECONDS = 60


@dataclass
class PendingSignIn:
    """A sign-in running in its thread: what it said (the device code's instructions), how it ended."""

    provider: str
    flow: str
    said: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    answered: threading.Event = field(default_factory=threading.Event)


_PENDING: dict[str, PendingSignIn] = {}
_PENDING_LOCK = threading.Lock()


def _sign_in(app: Postroom, who: str, profile_name: str, pending: PendingSignIn, provider: Any, grant: Any) -> None:
    """Run the provider's sign-in and store the grant with its audit entry (in its own thread)."""

    def say(line: str) -> None:
        pending.said.append(line)
        pending.answered.set()

    try:
        issued = provider.connect(grant, say)
        new = oauth.NewGrant(
            provider=pending.provider,
            flow=pending.flow,
            scopes=grant.scopes,
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            tenant=grant.tenant,
            client_id=grant.client_id,
            client_secret=grant.client_secret,
            refresh_token=issued.refresh_token,
            account=issued.account or grant.account,
            authority=grant.authority,
            ca_file=grant.ca_file,
        )
        with app.transaction() as db:
            oauth.save_grant(db, get_profile(db, profile_name, CONTACT_CENTER), new)
            detail = {"provider": new.provider, "flow": new.flow, "account": new.account, "scopes": new.scopes}
            record(db, who, "oauth.connect", profile_name, detail)
    except UserError as error:
        pending.error = str(error)
    except Exception as error:  # a provider's unexpected failure: its kind, never its secrets
        pending.error = f"The sign-in failed: {type(error).__name__}."
    finally:
        pending.done = True
        pending.answered.set()


def _start(name: str) -> PendingSignIn:
    """Check the posted form as ``oauth connect`` does and start the sign-in's thread."""
    form = request.form
    app = postroom_app()
    provider_name, flow = form.get("provider", ""), form.get("flow", "")
    if flow == "installed-app":
        raise UserError(
            "Google's installed-app sign-in comes back to a port on the machine that runs it: run "
            f"'postroom oauth connect {name} --provider google --flow installed-app' there."
        )
    if flow not in FLOWS:
        raise UserError(f"Choose one of the flows {', '.join(FLOWS)}, not {flow!r}.")
    provider = oauth.token_provider(app.plugins, provider_name)
    provider.check_flow(flow)
    secret = (form.get("service_account_key") if flow == "service-account" else form.get("client_secret")) or None
    if flow == "service-account" and not secret:
        raise UserError("A service account signs in with its key: paste the JSON key file.")
    if flow == "client-credentials" and not secret:
        raise UserError("The client-credentials flow needs the client secret.")
    client_id = form.get("client_id", "").strip() or None
    if client_id is None and flow == "service-account":
        client_id = oauth.service_account_client_id(secret)
    if not client_id:
        raise UserError(f"The {flow} flow needs the application's client id.")
    with transaction() as db:
        profile = find_profile(db, name)
        username, protocols = profile.username, frozenset({profile.fetch_protocol, profile.send_protocol})
    scopes = form.get("scopes", "").split()
    grant = provider.new_grant(
        profile_name=name,
        flow=flow,
        scopes=scopes or provider.default_scopes(flow, protocols),
        tenant=form.get("tenant", "").strip() or None,
        client_id=client_id,
        client_secret=secret,
        account=form.get("account", "").strip() or username,
        authority=form.get("authority", "").strip() or None,
        ca_file=form.get("ca_file", "").strip() or None,
    )
    pending = PendingSignIn(provider_name, flow)
    with _PENDING_LOCK:
        running = _PENDING.get(name)
        if running is not None and not running.done:
            raise UserError(f"A sign-in of profile {name!r} is already waiting; finish it first.")
        _PENDING[name] = pending
    threading.Thread(
        target=_sign_in, args=(app, actor(), name, pending, provider, grant), name=f"oauth-{name}", daemon=True
    ).start()
    return pending


@bp.route("/profiles/<name>/oauth", methods=["GET", "POST"])
@operator_required
def profile_oauth(name: str) -> Any:
    error = None
    if request.method == "POST":
        try:
            if request.form.get("action") == "disconnect":
                with transaction() as db:
                    if not oauth.delete_grant(db, find_profile(db, name)):
                        raise UserError(f"Profile {name!r} has no OAuth2 sign-in.")
                    record(db, actor(), "oauth.disconnect", name, {})
                flash(f"Profile {name!r} is signed out; its tokens are deleted.", "info")
            else:
                pending = _start(name)
                pending.answered.wait(FIRST_ANSWER_SECONDS)
            return redirect(url_for("operator.profile_oauth", name=name))
        except UserError as error_:
            error = str(error_)
    with transaction() as db:
        grant = oauth.grant_of(db, find_profile(db, name))
        status = oauth.grant_status(grant) if grant is not None else None
    page = render_template(
        "operator/oauth.html",
        name=name,
        status=status,
        pending=_PENDING.get(name),
        providers=oauth.PROVIDERS,
        flows=FLOWS,
        error=error,
    )
    return (page, 400) if error else page
