# A scripted XMPP client on slixmpp, for the federation interop tests
# (internal/interop/client.go). It logs one account in and then obeys JSON
# commands, one per line on stdin, and reports what it receives as JSON
# events, one per line on stdout. Written by the federation project; run
# with Debian's python3 and python3-slixmpp.
#
# usage: xmppclient.py JID PASSWORD HOST PORT CAFILE [SASL-MECHANISM]
#
# Commands:
#   {"op": "message", "to": J, "type": "chat", "id": I, "body": B}
#   {"op": "presence", "to": J (optional), "type": T (optional), "status": S}
#   {"op": "ping", "to": J}      XEP-0199
#   {"op": "disco", "to": J}     XEP-0030 disco#info
#   {"op": "quit"}
# Events:
#   {"event": "online", "jid": full JID}
#   {"event": "message" | "presence", "from", "to", "type", "id", "body",
#    "status", "error" (the error condition, for type error)}
#   {"event": "pong", "from": J}
#   {"event": "disco", "from": J, "identities": ["category/type", ...],
#    "features": [...]}
#   {"event": "iq-error", "from": J, "error": condition or "timeout"}
#   {"event": "failed", "reason": R}   (authentication or connection)
#   {"event": "offline"}

import asyncio
import json
import logging
import sys
import threading

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Client(ClientXMPP):
    def __init__(self, jid, password, mech):
        ClientXMPP.__init__(self, jid, password, sasl_mech=mech)
        # The test decides every subscription answer itself.
        self.auto_authorize = None
        self.auto_subscribe = False
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail("connection failed: %s" % e))
        self.add_event_handler("disconnected", lambda _: emit({"event": "offline"}))
        self.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"), self.on_message))
        self.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"), self.on_presence))

    def fail(self, reason):
        emit({"event": "failed", "reason": reason})
        self.disconnect()

    async def on_start(self, _):
        self.send_presence()
        await self.get_roster()
        emit({"event": "online", "jid": str(self.boundjid)})

    def report(self, kind, st, extra):
        ev = {"event": kind, "from": str(st["from"]), "to": str(st["to"]),
              "type": st["type"], "id": st["id"]}
        ev.update(extra)
        if st["type"] == "error":
            ev["error"] = st["error"]["condition"]
        emit(ev)

    def on_message(self, msg):
        self.report("message", msg, {"body": msg["body"]})

    def on_presence(self, pres):
        typ = pres["type"]
        # slixmpp reports plain available presence with its show value.
        if typ in ("chat", "away", "xa", "dnd", "available"):
            typ = ""
        ev = {"event": "presence", "from": str(pres["from"]), "to": str(pres["to"]),
              "type": typ, "id": pres["id"], "status": pres["status"]}
        if pres["type"] == "error":
            ev["error"] = pres["error"]["condition"]
        emit(ev)

    async def ask(self, to, kind, request):
        try:
            iq = await request
        except IqError as e:
            emit({"event": "iq-error", "from": to, "error": e.iq["error"]["condition"]})
            return
        except IqTimeout:
            emit({"event": "iq-error", "from": to, "error": "timeout"})
            return
        ev = {"event": kind, "from": str(iq["from"]) if iq is not None else to}
        if kind == "disco":
            info = iq["disco_info"]
            ev["identities"] = ["%s/%s" % (i[0], i[1]) for i in info["identities"]]
            ev["features"] = sorted(info["features"])
        emit(ev)

    def command(self, line):
        try:
            cmd = json.loads(line)
        except ValueError:
            emit({"event": "failed", "reason": "bad command %r" % line})
            return
        op = cmd.get("op")
        if op == "message":
            m = self.make_message(mto=cmd["to"], mbody=cmd.get("body", ""), mtype=cmd.get("type", "chat"))
            if cmd.get("id"):
                m["id"] = cmd["id"]
            m.send()
        elif op == "presence":
            p = self.make_presence(pto=cmd.get("to"), ptype=cmd.get("type"), pstatus=cmd.get("status"))
            p.send()
        elif op == "ping":
            # send_ping, not ping: ping counts an error from one's own
            # server as an answer.
            asyncio.ensure_future(self.ask(cmd["to"], "pong", self["xep_0199"].send_ping(cmd["to"], timeout=60)))
        elif op == "disco":
            asyncio.ensure_future(self.ask(cmd["to"], "disco", self["xep_0030"].get_info(jid=cmd["to"], local=False, cached=False, timeout=60)))
        elif op == "quit":
            self.disconnect()
        else:
            emit({"event": "failed", "reason": "unknown op %r" % op})


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    jid, password, host, port, cafile = sys.argv[1:6]
    mech = sys.argv[6] if len(sys.argv) > 6 else None
    xmpp = Client(jid, password, mech)
    xmpp.ca_certs = cafile
    loop = asyncio.get_event_loop()

    def read_stdin():
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(xmpp.command, line)
        loop.call_soon_threadsafe(xmpp.disconnect)

    threading.Thread(target=read_stdin, daemon=True).start()
    xmpp.connect((host, int(port)))
    loop.run_until_complete(xmpp.disconnected)


if __name__ == "__main__":
    main()
