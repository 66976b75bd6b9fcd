// Fingerprint readers attached to the appliance (GET /devices), and the live
// status of a capture in progress: the long POST runs while this polls the
// reader, so the desk sees "place finger", "lift finger" and each retry's
// reason as they happen.

import { api } from './api.js';
import { h } from './dom.js';
import { t, currentLang } from './i18n.js';

const POLL_MS = 250;

export async function readers() {
  const r = await api('/devices');
  return { list: (r.devices || []).filter((d) => d.capture !== false), available: r.available, error: r.error };
}

export function readerSelect(list, id = 'reader') {
  const sel = h('select', { id, name: 'reader' });
  for (const d of list) sel.append(h('option', { value: d.id }, `${d.name || d.driver} (${d.id})`));
  return sel;
}

// Polls reader `id` until stop() is called; onStatus(reader) on each answer.
export function watch(id, onStatus) {
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        const r = await api('/devices');
        const d = (r.devices || []).find((x) => x.id === id);
        if (!stopped && d) onStatus(d);
      } catch {
        // A missed poll is not an error for the desk: the capture's own answer reports failures.
      }
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
  })();
  return () => {
    stopped = true;
  };
}

// The appliance's prompts are English; other languages take the catalogue's words for the reason.
export function reasonText(outcome) {
  const key = `reason.${outcome.reason}`;
  const local = t(key);
  if (currentLang() !== 'en' && local !== key) return local;
  return outcome.prompt || (local !== key ? local : outcome.reason);
}

// What to tell the person at the reader, from its status; lastSeq: the outcome already shown before this capture.
export function prompt(d, lastSeq) {
  const s = d.session || null;
  const fresh = d.last && d.last.seq > lastSeq ? d.last : null;
  let lead = '';
  if (s && s.operation === 'enroll') lead = t('reader.impression', { k: s.impression, n: s.impressions }) + ' ';
  if (d.finger_needed) {
    const retry = fresh && fresh.result !== 'ok' ? t('reader.retry', { why: reasonText(fresh) }) + ' ' : '';
    return { kind: retry ? 'retry' : 'waiting', text: retry + lead + t('reader.place') };
  }
  if (d.finger_present) return { kind: 'waiting', text: lead + t('reader.lift') };
  if (d.busy) return { kind: 'waiting', text: lead + t('reader.processing') };
  return { kind: '', text: t('reader.ready') };
}

// Runs a capture request (action: a function returning its promise) on reader `id` while the
// status element follows the reader live; the polling stops however the request ends.
export async function withLiveStatus(list, id, status, action) {
  const before = list.find((d) => d.id === id)?.last?.seq ?? 0;
  const stop = watch(id, (d) => {
    const p = prompt(d, before);
    status.className = `status-line ${p.kind}`;
    status.textContent = p.text;
  });
  try {
    return await action();
  } finally {
    stop();
  }
}

export function imageOf(part) {
  if (!part || !part.data) return null;
  return h('img', {
    class: 'print-image',
    src: `data:${part.contentType || 'image/png'};base64,${part.data}`,
    alt: t('enrol.image'),
  });
}
