"""End-to-end test of the desk web UI (/ui/) in headless Chromium (Selenium,
Debian's chromium + chromium-driver), against the real appliance with
libfprint's virtual reader fed FVC2002 impressions.

Driven by tests/integration/test_ui.c, which starts the server, makes the
tokens and converts the images; this script gets everything through the
environment:
  RL_BASE               http://127.0.0.1:PORT
  RL_ADMIN_TOKEN, RL_REGISTRAR_TOKEN, RL_REVIEWER_TOKEN
  RL_READER_SOCKET      the virtual reader's Unix socket (FP_VIRTUAL_IMAGE)
  RL_IMAGES             a folder of PGM impressions 101_1 ... 101_4
  RL_SCREENSHOTS        where to save one screenshot per step

The story: a registrar registers a patient, enrols a finger (three
impressions, one retry on the way), finds the patient again by scanning a
fourth impression, registers a near-duplicate; a reviewer resolves it (with an
undo on the way); an admin checks that the audit trail shows each step and
looks at the admin screen; the UI switches to French. The browser console must
stay free of errors during all that; then deliberate mistakes must reach the
user as readable messages. Prints "ui: ok" at the end.
"""

import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["RL_BASE"]
ADMIN = os.environ["RL_ADMIN_TOKEN"]
REGISTRAR = os.environ["RL_REGISTRAR_TOKEN"]
REVIEWER = os.environ["RL_REVIEWER_TOKEN"]
SOCKET = os.environ["RL_READER_SOCKET"]
IMAGES = os.environ["RL_IMAGES"]
SHOTS = os.environ["RL_SCREENSHOTS"]
WAIT_S = 60

VR_CMD_RETRY = -1

step_no = 0


def log(msg):
    print(f"ui: {msg}", flush=True)


# ---- the appliance, directly (to know when the reader waits for a finger) ----

def api(path, token=ADMIN):
    req = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def reader():
    devices = api("/devices")["devices"]
    assert devices, "no reader listed"
    return devices[0]


def read_pgm(path):
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(maxsplit=4)
    assert parts[0] == b"P5", path
    w, h, maxval = int(parts[1]), int(parts[2]), int(parts[3])
    assert maxval == 255
    pixels = parts[4]
    assert len(pixels) >= w * h
    return w, h, pixels[: w * h]


class VirtualReader:
    """Speaks libfprint's virtual_image protocol: int32 width, int32 height, pixels; negative width = command."""

    def __init__(self, path):
        deadline = time.time() + 20
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                return
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def image(self, name):
        w, h, px = read_pgm(os.path.join(IMAGES, name + ".pgm"))
        self.sock.sendall(struct.pack("=ii", w, h) + px)

    def command(self, cmd, arg):
        self.sock.sendall(struct.pack("=ii", cmd, arg))


def wait_finger_needed(after_captures):
    """Until the reader waits for a finger in a capture started after `after_captures`; returns its count."""
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        d = reader()
        if d.get("finger_needed") and d.get("captures", 0) > after_captures:
            return d["captures"]
        time.sleep(0.1)
    raise AssertionError("the reader never asked for a finger")


def feed_enrolment(vr, names):
    """Clicks Start and gives the reader one impression each time it asks, until the UI says enrolled
    (a poor impression is refused and asked again: more names than three impressions)."""
    captures = reader()["captures"]
    click("#enrol-start")
    for name in names:
        deadline = time.time() + WAIT_S
        while True:
            if "done" in d.find_element(By.CSS_SELECTOR, "#enrol-status").get_attribute("class"):
                return
            r = reader()
            if r.get("finger_needed") and r.get("captures", 0) > captures:
                captures = r["captures"]
                break
            assert time.time() < deadline, "the reader never asked for a finger"
            time.sleep(0.1)
        vr.image(name)
    text_in("#enrol-status", "enrolled")


# ---- the browser ----

def browser():
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1366,768", "--lang=en-US", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


d = browser()
wait = WebDriverWait(d, WAIT_S)


def shot(name):
    global step_no
    step_no += 1
    path = os.path.join(SHOTS, f"{step_no:02d}-{name}.png")
    d.save_screenshot(path)
    log(f"screenshot {path}")


def q(css):
    return wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def visible(css):
    return wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def click(css):
    el = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
    el.click()
    return el


def text_in(css, text):
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def fill(css, value):
    el = visible(css)
    el.clear()
    el.send_keys(value)


def console_errors():
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def sign_in(token):
    d.get(BASE + "/ui/")
    fill("#token", token)
    click("#signin")
    q("#nav a")


def sign_out():
    click("#signout")
    q("#token")


def nav_ids():
    return [a.get_attribute("data-nav") for a in d.find_elements(By.CSS_SELECTOR, "#nav a")]


failures = []
try:
    # ---- sign in: a wrong token is refused readably, then the registrar's role shapes the screen ----
    d.get(BASE + "/ui/")
    q("#token")
    shot("signin")
    fill("#token", "rl1_0000000000000000_notatoken")
    click("#signin")
    text_in("#token-error", "not valid")
    console_errors()  # the 401 above is logged by Chromium as a failed load: expected, cleared here

    fill("#token", REGISTRAR)
    click("#signin")
    q("#register-form")
    assert nav_ids() == ["find", "register"], nav_ids()
    assert not console_errors(), "console errors after sign-in"

    # ---- register a patient: no one like her yet, so saved at once ----
    fill("#reg-given", "Amina")
    fill("#reg-family", "Odhiambo")
    fill("#reg-birthDate", "1988-07-21")
    Select(q("#reg-gender")).select_by_value("female")
    fill("#reg-idValue", "DESK-0001")
    fill("#reg-phone", "0712 555 010")
    fill("#reg-city", "Kisumu")
    # Validation first: a future birth date is refused before anything is sent.
    fill("#reg-birthDate", "2999-01-01")
    click("#register-check")
    text_in("#reg-birthDate-error", "not in the future")
    fill("#reg-birthDate", "1988-07-21")
    click("#register-check")
    eid = visible("#enterprise-id").text
    record = q("#record-id").text
    assert len(eid) == 32 and len(record) == 32, (eid, record)
    shot("registered")
    log(f"registered record {record}, person {eid}")

    # ---- enrol the right index: three impressions, with one retry shown live ----
    vr = VirtualReader(SOCKET)
    click("#go-enrol")
    q("#enrol-start")
    q('[data-position="2"][aria-pressed="true"]')
    # Keyboard: move to the left index with the keyboard, then back to the right index.
    d.find_element(By.CSS_SELECTOR, '[data-position="7"]').send_keys(Keys.ENTER)
    q('[data-position="7"][aria-pressed="true"]')
    d.find_element(By.CSS_SELECTOR, '[data-position="2"]').send_keys(Keys.SPACE)
    q('[data-position="2"][aria-pressed="true"]')
    captures = reader()["captures"]
    click("#enrol-start")
    captures = wait_finger_needed(captures)
    text_in("#enrol-status", "Impression 1 of 3")
    text_in("#enrol-status", "Place the finger")
    shot("enrol-waiting")
    vr.image("101_1")
    captures = wait_finger_needed(captures)
    text_in("#enrol-status", "Impression 2 of 3")
    vr.command(VR_CMD_RETRY, 1)  # "swipe too short": the desk must see the retry and its reason
    captures = wait_finger_needed(captures)
    text_in("#enrol-status", "Try again")
    shot("enrol-retry")
    vr.image("101_2")
    captures = wait_finger_needed(captures)
    text_in("#enrol-status", "Impression 3 of 3")
    vr.image("101_3")
    text_in("#enrol-status", "enrolled")
    rows = d.find_elements(By.CSS_SELECTOR, "#impressions tbody tr")
    assert len(rows) == 3, len(rows)
    img = q("#enrol-result img")
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert d.execute_script("return arguments[0].naturalWidth", img) > 100
    assert not d.find_elements(By.CSS_SELECTOR, "#duplicate-warning")
    shot("enrolled")
    assert not console_errors(), "console errors during enrolment"

    # ---- find her again by scanning a fourth impression ----
    click('#nav a[data-nav="find"]')
    q("#scan")
    captures = reader()["captures"]
    click("#scan")
    wait_finger_needed(captures)
    text_in("#scan-status", "Place the finger")
    vr.image("101_4")
    first = q("#results tbody tr")
    assert first.get_attribute("data-patient") == eid, (first.get_attribute("data-patient"), eid)
    assert "Amina Odhiambo" in first.text
    shot("found-by-finger")

    # ... and by demographics, with the grade and why
    fill("#find-family", "Odhiambo")
    fill("#find-birth", "1988")
    click("#find-submit")
    first = q("#results tbody tr")
    assert first.get_attribute("data-patient") == eid
    assert first.find_elements(By.CSS_SELECTOR, ".grade") and first.find_elements(By.CSS_SELECTOR, ".why span")
    shot("found-by-name")

    # ---- a near-duplicate: $match proposes her, the clerk is not sure and registers a new person ----
    click('#nav a[data-nav="register"]')
    fill("#reg-given", "Amina")
    fill("#reg-family", "Odhiambo")
    fill("#reg-birthDate", "2010-02-14")  # a wrong birth date: mother and daughter, or a typing error? A human decides.
    Select(q("#reg-gender")).select_by_value("female")
    fill("#reg-idValue", "DESK-0002")
    fill("#reg-city", "Kisumu")
    click("#register-check")
    cand = q("#register-matches tr[data-candidate]")
    assert cand.get_attribute("data-candidate") == eid, cand.get_attribute("data-candidate")
    shot("near-duplicate-proposed")
    click("#register-new")
    dup_record = visible("#record-id").text
    assert dup_record and dup_record != record

    # ... and enrols the same finger on it: the appliance's 1:N finds it under the first person, and says so.
    click("#go-enrol")
    feed_enrolment(vr, ["101_6", "101_7", "101_8", "101_3", "101_2"])
    warning = visible("#duplicate-warning").text
    assert "already belongs to someone else" in warning and "Amina Odhiambo" in warning, warning
    shot("enrol-duplicate-warning")
    assert not console_errors(), "console errors during registration"
    sign_out()

    # ---- the reviewer resolves it: "not the same", undo, then "same person" ----
    sign_in(REVIEWER)
    assert nav_ids() == ["find", "register", "review"], nav_ids()
    click('#nav a[data-nav="review"]')
    row = q("#review-list tbody tr")
    shot("review-queue")
    row.find_element(By.CSS_SELECTOR, "a").click()
    q("#review-side")
    side = q("#review-side").text
    assert "Amina" in side and "Odhiambo" in side, side
    assert d.find_elements(By.CSS_SELECTOR, '#review-side [data-field="given"].agree')
    assert d.find_elements(By.CSS_SELECTOR, '#review-side [data-field="birth_date"].disagree')
    # Both have the right index now: the appliance compared them, same finger.
    assert d.find_elements(By.CSS_SELECTOR, '#finger-compare [data-field="fingerprint"].agree'), q("#review-side").text
    assert "null" not in q("main").text
    shot("review-item")
    click("#decide-different")
    undo = click("#undo")
    wait.until(EC.staleness_of(undo))  # the item is shown afresh, open again
    click("#decide-same")
    q("#undo")
    text_in("#review-decided", "same person")
    shot("review-decided")
    click("#next")
    # The enrolment's fingerprint duplicate may wait as an item of its own: same person too.
    while not q("#review-count") or not d.find_elements(By.CSS_SELECTOR, "#review-empty"):
        q("#review-list tbody tr a").click()
        q("#finger-compare")
        click("#decide-same")
        q("#undo")
        click("#next")
    # The reviewer's view of the person: both records, each with how it is linked now.
    d.get(BASE + f"/ui/#/patient/{record}")
    wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#history tbody tr")) == 2)
    assert "manual" in q("#history").text, q("#history").text
    assert not d.find_elements(By.CSS_SELECTOR, "#audit")  # the audit trail is for admins
    assert not console_errors(), "console errors during review"
    sign_out()

    # ---- the admin: the person now has both records; the audit trail shows each step ----
    sign_in(ADMIN)
    assert nav_ids() == ["find", "register", "review", "admin"], nav_ids()
    d.get(BASE + f"/ui/#/patient/{record}")
    q("#audit tbody tr")
    members = [r.get_attribute("data-record") for r in d.find_elements(By.CSS_SELECTOR, "#sources tbody tr")]
    assert sorted(members) == sorted([record, dup_record]), members
    assert len(d.find_elements(By.CSS_SELECTOR, "#fingers tbody tr")) == 2
    assert "null" not in q("main").text
    actions = {r.get_attribute("data-action") for r in d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")}
    for needed in ("create", "read", "finger-enroll", "finger-identify", "review-decision", "undo"):
        assert needed in actions, (needed, sorted(actions))
    history = {r.get_attribute("data-action") for r in d.find_elements(By.CSS_SELECTOR, "#history tbody tr")}
    assert {"create", "review-decision", "undo"} <= history, sorted(history)
    shot("patient-audit")
    click('#nav a[data-nav="admin"]')
    readers_text = q("#admin-readers").text
    assert "virtual_image" in readers_text, readers_text
    store_text = q("#admin-store").text
    assert "Enrolled fingers\n2" in store_text or "Enrolled fingers 2" in store_text, store_text
    assert "Review queue\n0" in store_text or "Review queue 0" in store_text, store_text
    shot("admin")

    # ---- French: the catalogue and the dates follow the language ----
    Select(q("#lang")).select_by_value("fr")
    text_in('#nav a[data-nav="find"]', "Rechercher un patient")
    d.get(BASE + f"/ui/#/patient/{record}")
    q("#audit tbody tr")
    text_in("main", "juil. 1988")
    shot("patient-fr")
    Select(q("#lang")).select_by_value("en")
    text_in('#nav a[data-nav="find"]', "Find a patient")
    errs = console_errors()
    assert not errs, f"console errors: {errs}"

    # ---- deliberate mistakes reach the user as readable messages ----
    click('#nav a[data-nav="find"]')
    fill("#find-birth", "1988-02-30")
    click("#find-submit")
    text_in("#find-form .field-error", "YYYY")
    fill("#find-birth", "1988")  # a birth year alone: the appliance cannot search on it (400)
    click("#find-submit")
    msg = visible(".msg-error").text  # the appliance's 400 OperationOutcome, shown as it is
    assert msg and "HTTP" not in msg, msg
    shot("readable-error")
    log(f"error shown: {msg}")
except Exception as e:  # noqa: BLE001 - report, screenshot, then fail
    failures.append(repr(e))
    try:
        shot("failure")
        log("page at failure: " + d.find_element(By.TAG_NAME, "body").text[:2000])
        log("console: " + json.dumps(d.get_log("browser"))[:2000])
    except Exception:  # noqa: BLE001
        pass
finally:
    d.quit()

if failures:
    print("ui: FAILED: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
print("ui: ok")
