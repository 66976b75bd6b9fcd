// The appliance's public API, from the browser: FHIR under /fhir, biometrics,
// devices and admin. Every failure becomes an ApiError whose message a clerk
// can read: the OperationOutcome's diagnostics when the server sent one,
// otherwise a sentence about what went wrong (network, server fault).

import { t } from './i18n.js';

const TOKEN_KEY = 'rl.token';
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message, outcome) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.outcome = outcome || null;
  }
  // The machine-readable reason of a device or biometric answer ("poor-quality", "mismatch"...), if any.
  get reason() {
    for (const issue of this.outcome?.issue || [])
      for (const c of issue.details?.coding || []) if (/reason$/.test(c.system || '')) return c.code;
    return null;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

function outcomeText(outcome) {
  const parts = (outcome.issue || []).map((i) => i.diagnostics || i.details?.text || i.code).filter(Boolean);
  return parts.join('; ');
}

export async function api(path, { method = 'GET', body, query, signal, headers = {} } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
    }
    const qs = q.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const fhir = path.startsWith('/fhir');
  const h = { Accept: fhir ? 'application/fhir+json' : 'application/json', ...headers };
  const tok = token();
  if (tok) h.Authorization = `Bearer ${tok}`;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = fhir ? 'application/fhir+json' : 'application/json';
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url, { method, headers: h, body: payload, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, t('error.network'));
  }
  const type = r.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    try {
      data = await r.json();
    } catch {
      data = null;
    }
  } else {
    data = await r.text();
  }
  if (r.ok) return data;
  let message = data && data.resourceType === 'OperationOutcome' ? outcomeText(data) : '';
  if (r.status === 401) {
    onUnauthorized();
    message = t('error.unauthorized');
  } else if (r.status === 403) {
    message = t('error.forbidden', { detail: message });
  } else if (r.status === 429) {
    message = t('error.rate', { s: r.headers.get('Retry-After') || '1' });
  } else if (r.status >= 500 && !message) {
    message = t('error.server', { status: r.status });
  }
  throw new ApiError(r.status, message || t('error.http', { status: r.status }), data?.resourceType ? data : null);
}
