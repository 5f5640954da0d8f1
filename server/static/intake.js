/*
 * The resident's intake page (docs/protocol.md §14.3 "Intake page", §N.11, §C.6-§C.8;
 * ADR 0038).  What schakel.client.card does for `schakel signal send --anonymous
 * --network-card`, in the browser, with libsodium.js:
 *
 * 1. fetch the network's card and believe it only as a signaller without keys may
 *    (protocol.md §N.11, signaller checks, in this order): its shape; the coordinator's
 *    fingerprint from the leaflet is that of intake.sign; the signature by intake.sign over
 *    "schakel/v1/network-card" || canonical JSON (§2.2); in force now.  Then: the card is
 *    this network's, its server is this page's origin, and the server fingerprint (§4.3)
 *    of the keys GET /v1/server serves equals that of the card's keys;
 * 2. seal the canonical JSON signal-content (§C.7) to intake.box (crypto_box_seal, §3.3
 *    kind 2) with a one-time reply key, and post the bare signal (§C.6) -- checking the
 *    server again just before;
 * 3. show the ontvangstcode: the receipt token, the signal id and the reply secret key;
 * 4. read GET /v1/signals/status with that receipt and believe the feedback only as far as
 *    intake.sign signed it (§C.8); open each message with the reply key.
 *
 * Nothing is stored in the browser; the plaintext leaves the page only sealed.  Every
 * refusal is shown in Dutch and nothing is sent after one.  No innerHTML: the page runs
 * under Trusted Types (server/routes/intake.py).
 */
"use strict";

(function () {
  var sodium = null;                 // libsodium-wrappers, once ready
  var NETWORK = null;                // the network of this page's address
  var card = null;                   // the verified card's signed part
  var ticket = null;                 // {receipt, signal, reply} of the signal just sent

  var ID_BYTES = 16;
  var KEY_BYTES = 32;
  var RECEIPT_BYTES = 32;
  var SEALED_MAX_BYTES = 32 * 1024;
  var SEAL_OVERHEAD = 48;
  var CONCERN_MAX = 4000;
  var MAX_FEEDBACK = 50;
  var TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;
  var B64URL = /^[A-Za-z0-9_-]*$/;
  var CARD_KINDS = ["resident", "volunteer", "volunteer-driver", "gp", "neighbour", "family",
                    "professional", "other"];
  var STATUSES = ["received", "taken-up", "referred", "closed", "not-taken-up"];
  var URGENCIES = ["low", "medium", "high", "acute"];

  var KIND_NL = {
    "resident": "Buurtbewoner",
    "neighbour": "Buurman of buurvrouw",
    "volunteer": "Vrijwilliger",
    "volunteer-driver": "Vrijwillige chauffeur (bijvoorbeeld van het ouderenvervoer)",
    "gp": "Huisarts",
    "family": "Familie",
    "professional": "Professional",
    "other": "Anders"
  };
  var STATUS_NL = {
    "received": "Ontvangen: de coördinator heeft uw signaal nog niet beantwoord",
    "taken-up": "Opgepakt",
    "referred": "Doorverwezen",
    "closed": "Afgesloten",
    "not-taken-up": "Niet opgepakt"
  };

  /* A refusal: what was refused and why, in Dutch, for the resident. */
  function Refusal(message) {
    this.message = message;
  }

  function $(id) { return document.getElementById(id); }

  function show(id, visible) { $(id).hidden = !visible; }

  function progress(text) { $("progress").textContent = text; }

  function refuse(error) {
    var text = error instanceof Refusal ? error.message
      : "Er ging iets mis in deze pagina; er is niets verstuurd. Laad de pagina opnieuw.";
    progress("");
    $("refusal-text").textContent = text;
    show("refusal", true);
    $("refusal").focus();
  }

  function clearRefusal() {
    $("refusal-text").textContent = "";
    show("refusal", false);
  }

  // ------------------------------------------------------------------ encodings (§2.1)

  function utf8(text) { return new TextEncoder().encode(text); }

  function b64e(bytes) {
    return sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
  }

  /* Canonical unpadded base64url of exactly `length` bytes, else a refusal naming `what`. */
  function b64d(text, length, what) {
    var bad = new Refusal("De gegevens van de server kloppen niet (" + what + "); er is niets " +
                          "verstuurd.");
    if (typeof text !== "string" || !B64URL.test(text) || text.length % 4 === 1) throw bad;
    var bytes;
    try {
      bytes = sodium.from_base64(text, sodium.base64_variants.URLSAFE_NO_PADDING);
    } catch (e) {
      throw bad;
    }
    if (b64e(bytes) !== text || (length !== null && bytes.length !== length)) throw bad;
    return bytes;
  }

  function hasLoneSurrogate(text) {
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c >= 0xD800 && c <= 0xDBFF) {
        var d = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
        if (d < 0xDC00 || d > 0xDFFF) return true;
        i++;
      } else if (c >= 0xDC00 && c <= 0xDFFF) {
        return true;
      }
    }
    return false;
  }

  /* RFC 8785 canonical JSON of the values this page handles: objects with members sorted by
     UTF-16 code units, arrays, strings (ECMAScript's JSON.stringify is RFC 8785's string
     form), safe integers, booleans and null. */
  function canonical(value) {
    if (value === null || typeof value === "boolean") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) throw new Refusal("Een getal in de gegevens is ongeldig.");
      return JSON.stringify(value);
    }
    if (typeof value === "string") {
      if (hasLoneSurrogate(value)) throw new Refusal("De tekst bevat een ongeldig teken.");
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (k) {
        return canonical(k) + ":" + canonical(value[k]);
      }).join(",") + "}";
    }
    throw new Refusal("De gegevens bevatten een ongeldige waarde.");
  }

  function concat(a, b) {
    var out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

  /* The object has exactly the `required` members and perhaps some `optional` ones. */
  function hasMembers(v, required, optional) {
    if (!isObject(v)) return false;
    var keys = Object.keys(v);
    for (var i = 0; i < required.length; i++) if (keys.indexOf(required[i]) < 0) return false;
    for (var j = 0; j < keys.length; j++) {
      if (required.indexOf(keys[j]) < 0 && (optional || []).indexOf(keys[j]) < 0) return false;
    }
    return true;
  }

  /* A real calendar time in wire form (§2.1), as milliseconds since 1970. */
  function parseTimestamp(text) {
    var m = typeof text === "string" ? TIMESTAMP.exec(text) : null;
    if (m === null) return null;
    var ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    var d = new Date(ms);
    if (+m[1] < 1 || d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 ||
        d.getUTCDate() !== +m[3] || +m[4] > 23 || +m[5] > 59 || +m[6] > 59) return null;
    return ms;
  }

  function formatTimestamp(ms) {
    return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
  }

  function showTime(ms) {
    return new Date(ms).toLocaleString("nl-NL", {dateStyle: "long", timeStyle: "short"});
  }

  // ------------------------------------------------------------------ keys (§2.1, §4.3)

  function keyId(publicKey) {
    return b64e(sodium.crypto_generichash(32, publicKey, utf8("schakel/v1/key-id")));
  }

  function fingerprintDigits(data, key) {
    var d = sodium.crypto_generichash(40, data, utf8(key));
    var groups = [];
    for (var i = 0; i < 8; i++) {
      var n = 0;
      for (var j = 0; j < 5; j++) n = n * 256 + d[5 * i + j];
      groups.push(String(n % 100000).padStart(5, "0"));
    }
    return groups.join(" ");
  }

  function fingerprint(signKey) { return fingerprintDigits(signKey, "schakel/v1/fingerprint"); }

  function serverFingerprint(log, gate) {
    return fingerprintDigits(concat(log, gate), "schakel/v1/server-fingerprint");
  }

  /* 40 digits, separated by white space and/or dashes or not at all (§4.3). */
  function parseFingerprint(text) {
    if (text.length > 256 || !/^[0-9\s-]*$/.test(text)) return null;
    var digits = text.replace(/[\s-]/g, "");
    return digits.length === 40 ? digits : null;
  }

  /* Compares two digit strings of equal length without stopping at the first difference. */
  function sameDigits(a, b) {
    a = a.replace(/ /g, "");
    b = b.replace(/ /g, "");
    if (a.length !== b.length) return false;
    var diff = 0;
    for (var i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
  }

  // ------------------------------------------------------------------ signed envelopes (§2.2)

  /* Verify `envelope` as an object of type `type` signed by `signKey`; its signed part. */
  function verifyEnvelope(envelope, type, signKey, what) {
    var forged = new Refusal(what + " is niet echt: de handtekening klopt niet. Er is niets " +
                             "verstuurd of getoond.");
    if (!hasMembers(envelope, ["signed", "signatures"]) || !isObject(envelope.signed) ||
        envelope.signed.type !== type || !Array.isArray(envelope.signatures) ||
        envelope.signatures.length < 1 || envelope.signatures.length > 8) throw forged;
    var id = keyId(signKey);
    var seen = {};
    var counted = 0;
    var message = utf8("schakel/v1/" + type + canonical(envelope.signed));
    envelope.signatures.forEach(function (entry) {
      if (!hasMembers(entry, ["keyid", "sig"]) || typeof entry.keyid !== "string" ||
          Object.prototype.hasOwnProperty.call(seen, entry.keyid)) throw forged;
      seen[entry.keyid] = true;
      if (entry.keyid !== id) return;            // another key's signature does not count
      var sig;
      try {
        sig = b64d(entry.sig, 64, "sig");
      } catch (e) {
        throw forged;
      }
      if (!sodium.crypto_sign_verify_detached(sig, message, signKey)) throw forged;
      counted++;
    });
    if (counted < 1) throw forged;
    return envelope.signed;
  }

  // ------------------------------------------------------------------ the card (§N.11)

  var CARD_FIELDS = ["type", "network", "name", "serial", "issued", "valid_until", "server",
                     "intake", "signaller_kinds"];

  function checkCardShape(signed) {
    var bad = new Refusal("De kaart van dit netwerk is ongeldig; u kunt hier geen signaal " +
                          "versturen. Neem contact op met het netwerk.");
    if (!hasMembers(signed, CARD_FIELDS) || typeof signed.name !== "string" ||
        signed.name.length < 1 || signed.name.length > 200 ||
        !Number.isSafeInteger(signed.serial) || signed.serial < 1 ||
        !hasMembers(signed.server, ["origin", "log", "gate"]) ||
        typeof signed.server.origin !== "string" ||
        !/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(signed.server.origin) ||
        !hasMembers(signed.intake, ["sign", "box"]) ||
        !Array.isArray(signed.signaller_kinds) || signed.signaller_kinds.length < 1 ||
        signed.signaller_kinds.length > 8) throw bad;
    var kinds = {};
    signed.signaller_kinds.forEach(function (k) {
      if (CARD_KINDS.indexOf(k) < 0 || kinds[k]) throw bad;
      kinds[k] = true;
    });
    var issued = parseTimestamp(signed.issued);
    var until = parseTimestamp(signed.valid_until);
    if (issued === null || until === null || until <= issued) throw bad;
    b64d(signed.network, ID_BYTES, "network");
    b64d(signed.server.log, KEY_BYTES, "server.log");
    b64d(signed.server.gate, KEY_BYTES, "server.gate");
    b64d(signed.intake.box, KEY_BYTES, "intake.box");
    return b64d(signed.intake.sign, KEY_BYTES, "intake.sign");
  }

  /* The card as a signaller without keys believes it (§N.11): shape, fingerprint,
     signature, in force; then this network's, at this origin. */
  function verifyCard(envelope, anchor) {
    if (!isObject(envelope) || !isObject(envelope.signed)) {
      throw new Refusal("De server gaf geen geldige kaart van dit netwerk; er is niets verstuurd.");
    }
    var signKey = checkCardShape(envelope.signed);
    if (!sameDigits(fingerprint(signKey), anchor)) {
      throw new Refusal("Deze kaart is niet ondertekend door de coördinator met de " +
                        "vingerafdruk die u invulde. Controleer de cijfers op de folder. " +
                        "Klopt het nog steeds niet, stuur dan niets en neem contact op met " +
                        "het netwerk.");
    }
    var signed = verifyEnvelope(envelope, "network-card", signKey, "De kaart van dit netwerk");
    if (!(Date.now() < parseTimestamp(signed.valid_until))) {
      throw new Refusal("De kaart van dit netwerk is verlopen (" +
                        showTime(parseTimestamp(signed.valid_until)) + "). Er is niets " +
                        "verstuurd; vraag het netwerk om een nieuwe kaart.");
    }
    if (signed.network !== NETWORK) {
      throw new Refusal("De server gaf de kaart van een ander netwerk; er is niets verstuurd.");
    }
    if (signed.server.origin !== window.location.origin) {
      throw new Refusal("Volgens de kaart gaan signalen naar " + signed.server.origin +
                        ", niet naar deze website. Er is niets verstuurd.");
    }
    return signed;
  }

  async function getJson(path, headers) {
    var response = await fetch(path, {method: "GET", headers: headers || {}, cache: "no-store",
                                      credentials: "omit", referrerPolicy: "no-referrer"});
    var body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    return {status: response.status, body: body, headers: response.headers};
  }

  /* The server at this origin holds the keys whose server fingerprint the card names. */
  async function checkServer(signed) {
    var answer = await getJson("/v1/server");
    var imposter = new Refusal("De server van deze website heeft andere sleutels dan de kaart " +
                               "van het netwerk noemt. Er is niets verstuurd.");
    if (answer.status !== 200 || !isObject(answer.body)) throw imposter;
    var expected = serverFingerprint(b64d(signed.server.log, KEY_BYTES, "server.log"),
                                     b64d(signed.server.gate, KEY_BYTES, "server.gate"));
    var served;
    try {
      served = serverFingerprint(b64d(answer.body.log, KEY_BYTES, "log"),
                                 b64d(answer.body.gate, KEY_BYTES, "gate"));
    } catch (e) {
      throw imposter;
    }
    if (!sameDigits(expected, served)) throw imposter;
    return expected;
  }

  async function loadCard(event) {
    if (event) event.preventDefault();
    clearRefusal();
    card = null;
    show("card-facts", false);
    show("step-send", false);
    show("step-feedback", false);
    try {
      var anchor = parseFingerprint($("fingerprint").value);
      if (anchor === null) {
        throw new Refusal("Vul de vingerafdruk van de coördinator in: 40 cijfers, zoals op de " +
                          "folder van het netwerk.");
      }
      progress("De kaart van het netwerk wordt gecontroleerd…");
      var answer = await getJson("/v1/networks/" + NETWORK + "/card");
      if (answer.status === 404) {
        throw new Refusal("Dit netwerk heeft (nog) geen kaart gepubliceerd. U kunt hier nog " +
                          "geen signaal versturen.");
      }
      if (answer.status !== 200 || !isObject(answer.body) ||
          !hasMembers(answer.body, ["card"])) {
        throw new Refusal("De kaart van dit netwerk kon niet worden opgehaald. Probeer het " +
                          "later opnieuw.");
      }
      var signed = verifyCard(answer.body.card, anchor);
      var server = await checkServer(signed);
      card = signed;
      $("network-name").textContent = signed.name;
      $("fact-name").textContent = signed.name;
      $("fact-server").textContent = server;
      $("fact-valid").textContent = showTime(parseTimestamp(signed.valid_until));
      fillKinds(signed.signaller_kinds);
      progress("");
      show("card-facts", true);
      show("step-send", true);
      show("step-feedback", true);
    } catch (error) {
      refuse(error);
    }
  }

  function fillKinds(kinds) {
    var select = $("kind");
    while (select.firstChild) select.removeChild(select.firstChild);
    kinds.forEach(function (kind) {
      var option = document.createElement("option");
      option.value = kind;
      option.textContent = KIND_NL[kind];
      select.appendChild(option);
    });
  }

  // ------------------------------------------------------------------ sending (§C.6, §C.7)

  function codePoints(text) { return Array.from(text).length; }

  function checkConcern(text) {
    var n = codePoints(text);
    if (text.trim().length === 0) throw new Refusal("Beschrijf eerst uw zorg.");
    if (n > CONCERN_MAX) {
      throw new Refusal("Uw tekst is te lang: " + n + " tekens, er passen er " + CONCERN_MAX +
                        ".");
    }
    if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.test(text) || hasLoneSurrogate(text)) {
      throw new Refusal("Uw tekst bevat een teken dat niet verstuurd kan worden (een " +
                        "stuurteken). Typ de tekst opnieuw in plaats van hem te plakken.");
    }
  }

  function chosenUrgency() {
    for (var i = 0; i < URGENCIES.length; i++) {
      if ($("urgency-" + URGENCIES[i]).checked) return URGENCIES[i];
    }
    throw new Refusal("Kies hoe dringend het is.");
  }

  function ticketCode(t) {
    return t.receipt + "." + t.signal + "." + b64e(t.reply);
  }

  function errorOf(answer) {
    var e = isObject(answer.body) && isObject(answer.body.error) ? answer.body.error : {};
    return typeof e.code === "string" ? e.code : "";
  }

  async function sendSignal(event) {
    event.preventDefault();
    clearRefusal();
    var button = $("send");
    button.disabled = true;
    try {
      if (card === null) throw new Refusal("Controleer eerst het netwerk (stap 1).");
      var kind = $("kind").value;
      if (card.signaller_kinds.indexOf(kind) < 0) {
        throw new Refusal("Dit netwerk vraagt geen signalen van: " + (KIND_NL[kind] || kind) +
                          ".");
      }
      var concern = $("concern").value;
      checkConcern(concern);
      var urgency = chosenUrgency();
      if (!(Date.now() < parseTimestamp(card.valid_until))) {
        throw new Refusal("De kaart van dit netwerk is intussen verlopen. Er is niets " +
                          "verstuurd; laad de pagina opnieuw.");
      }
      progress("Uw signaal wordt versleuteld…");
      var reply = sodium.crypto_box_keypair();
      var signal = b64e(sodium.randombytes_buf(ID_BYTES));
      var replyKey = b64e(reply.publicKey);
      var content = {network: card.network, signal: signal, reply_key: replyKey,
                     signaller_kind: kind, concern: concern, urgency: urgency,
                     contact_back: $("contact-back").checked};
      var plaintext = utf8(canonical(content));
      if (plaintext.length > SEALED_MAX_BYTES - SEAL_OVERHEAD) {
        throw new Refusal("Uw signaal is te groot om te versturen. Maak de tekst korter.");
      }
      var sealed = sodium.crypto_box_seal(plaintext,
                                          b64d(card.intake.box, KEY_BYTES, "intake.box"));
      progress("De server wordt gecontroleerd…");
      await checkServer(card);
      var body = {signal: {type: "signal", network: card.network, signal: signal,
                           source: "anonymous", created: formatTimestamp(Date.now()),
                           sealed: b64e(sealed), reply_key: replyKey}};
      progress("Uw versleutelde signaal wordt verstuurd…");
      var response = await fetch("/v1/networks/" + card.network + "/signals", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body), cache: "no-store", credentials: "omit",
        referrerPolicy: "no-referrer"});
      var answer = {status: response.status, body: null};
      try {
        answer.body = await response.json();
      } catch (e) {
        answer.body = null;
      }
      if (answer.status === 429) {
        throw new Refusal("Er zijn vanaf uw internetverbinding in korte tijd te veel signalen " +
                          "verstuurd. Uw signaal is niet verstuurd; probeer het later opnieuw.");
      }
      if (answer.status === 403 && errorOf(answer) === "policy_violation") {
        throw new Refusal("Dit netwerk neemt geen signalen zonder afzender aan. Uw signaal is " +
                          "niet verstuurd.");
      }
      if ((answer.status !== 201 && answer.status !== 200) || !isObject(answer.body)) {
        throw new Refusal("De server nam uw signaal niet aan (" + answer.status +
                          (errorOf(answer) ? ", " + errorOf(answer) : "") + "). Uw signaal " +
                          "is niet verstuurd; probeer het later opnieuw.");
      }
      var receipt = answer.body.receipt;
      b64d(receipt, RECEIPT_BYTES, "receipt");
      ticket = {receipt: receipt, signal: signal, reply: reply.privateKey};
      $("concern").value = "";
      updateCount();
      $("receipt-code").value = ticketCode(ticket);
      $("ticket").value = ticketCode(ticket);
      progress("");
      show("step-send", false);
      show("step-receipt", true);
      $("h-receipt").focus();
    } catch (error) {
      refuse(error);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ feedback (§C.8)

  function parseTicket(text) {
    var parts = text.replace(/\s/g, "").split(".");
    var bad = new Refusal("Dit is geen geldige ontvangstcode. Neem de code precies over.");
    if (parts.length !== 3) throw bad;
    try {
      b64d(parts[0], RECEIPT_BYTES, "receipt");
      b64d(parts[1], ID_BYTES, "signal");
      return {receipt: parts[0], signal: parts[1], reply: b64d(parts[2], KEY_BYTES, "reply")};
    } catch (e) {
      throw bad;
    }
  }

  /* The feedback statements as far as intake.sign signed them, checked as §C.8 says. */
  function verifyStatus(body, t) {
    var lying = new Refusal("De server gaf een terugkoppeling die niet van de coördinator " +
                            "komt of niet bij uw signaal hoort. Die wordt niet getoond.");
    if (!hasMembers(body, ["signal", "status", "updated", "feedback"]) ||
        body.signal !== t.signal || STATUSES.indexOf(body.status) < 0 ||
        !Array.isArray(body.feedback) || body.feedback.length > MAX_FEEDBACK) throw lying;
    var signKey = b64d(card.intake.sign, KEY_BYTES, "intake.sign");
    var replyPublic = sodium.crypto_scalarmult_base(t.reply);
    var decoder = new TextDecoder("utf-8", {fatal: true});
    var out = [];
    var last = null;
    body.feedback.forEach(function (envelope) {
      var fb = verifyEnvelope(envelope, "signal-feedback", signKey,
                              "De terugkoppeling");
      if (!hasMembers(fb, ["type", "network", "signal", "status", "at"], ["message"]) ||
          fb.network !== card.network || fb.signal !== t.signal ||
          STATUSES.indexOf(fb.status) < 0) throw lying;
      var at = parseTimestamp(fb.at);
      if (at === null || (last !== null && at < last)) throw lying;
      last = at;
      var message = null;
      if (fb.message !== undefined) {
        try {
          var box = b64d(fb.message, null, "message");
          message = decoder.decode(sodium.crypto_box_seal_open(box, replyPublic, t.reply));
        } catch (e) {
          throw lying;
        }
      }
      out.push({status: fb.status, at: at, message: message});
    });
    var expected = out.length ? out[out.length - 1].status : "received";
    if (body.status !== expected) throw lying;
    return {status: expected, feedback: out};
  }

  async function readFeedback(event) {
    event.preventDefault();
    clearRefusal();
    show("feedback", false);
    try {
      if (card === null) throw new Refusal("Controleer eerst het netwerk (stap 1).");
      var t = parseTicket($("ticket").value);
      progress("De terugkoppeling wordt opgehaald…");
      var answer = await getJson("/v1/signals/status", {"Schakel-Receipt": t.receipt});
      if (answer.status === 404) {
        throw new Refusal("Er is geen signaal met deze ontvangstcode.");
      }
      if (answer.status !== 200) {
        throw new Refusal("De terugkoppeling kon niet worden opgehaald (" + answer.status +
                          "). Probeer het later opnieuw.");
      }
      var status = verifyStatus(answer.body, t);
      $("feedback-status").textContent = STATUS_NL[status.status];
      var list = $("feedback-list");
      while (list.firstChild) list.removeChild(list.firstChild);
      status.feedback.forEach(function (fb) {
        var item = document.createElement("li");
        var head = document.createElement("strong");
        head.textContent = showTime(fb.at) + ": " + STATUS_NL[fb.status];
        item.appendChild(head);
        if (fb.message !== null) {
          var text = document.createElement("p");
          text.className = "message";
          text.textContent = fb.message;
          item.appendChild(text);
        }
        list.appendChild(item);
      });
      progress("");
      show("feedback", true);
    } catch (error) {
      refuse(error);
    }
  }

  // ------------------------------------------------------------------ the page

  function updateCount() {
    var n = codePoints($("concern").value);
    $("concern-count").textContent = n + " van de " + CONCERN_MAX + " tekens";
  }

  async function copyCode() {
    var field = $("receipt-code");
    field.focus();
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      progress("De ontvangstcode is gekopieerd.");
    } catch (e) {
      progress("Kopiëren lukte niet; selecteer de code en kopieer hem zelf.");
    }
  }

  async function start() {
    var m = /^\/intake\/([A-Za-z0-9_-]{22})\/?$/.exec(window.location.pathname);
    $("check-form").addEventListener("submit", loadCard);
    $("signal-form").addEventListener("submit", sendSignal);
    $("feedback-form").addEventListener("submit", readFeedback);
    $("concern").addEventListener("input", updateCount);
    $("copy-code").addEventListener("click", copyCode);
    updateCount();
    try {
      if (m === null) throw new Refusal("Dit adres noemt geen netwerk.");
      if (!window.sodium || !window.sodium.ready) {
        throw new Refusal("De versleuteling kon niet worden geladen; er wordt niets verstuurd.");
      }
      await window.sodium.ready;
      sodium = window.sodium;
      NETWORK = m[1];
      // A QR code on the leaflet may carry the fingerprint: /intake/<network>#vingerafdruk=...
      var given = /^#vingerafdruk=([0-9 %-]{1,256})$/.exec(window.location.hash);
      if (given !== null) {
        $("fingerprint").value = decodeURIComponent(given[1]);
        await loadCard(null);
      }
    } catch (error) {
      refuse(error);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
}());
