// Admin: readers attached, store and gallery size, review queue length,
// recent server errors, an online backup, and this desk's required fields.

import { api } from '../api.js';
import { h, clear, formValues } from '../dom.js';
import { t, fmtDateTime, fmtNumber } from '../i18n.js';
import { REQUIRABLE, requiredFields } from './register.js';

// A few gauges from the Prometheus text of /metrics: name -> value (labels ignored, summed).
function gauges(text, names) {
  const out = {};
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+([-+\deE.]+|NaN)/.exec(line);
    if (m && names.includes(m[1])) out[m[1]] = (out[m[1]] || 0) + Number(m[2]);
  }
  return out;
}

function kv(id, pairs) {
  return h('table', { id }, h('tbody', {}, pairs.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))));
}

export async function render(main, ctx) {
  main.append(h('h1', {}, t('admin.title')));
  const [health, devices, metricsText, errors] = await Promise.all([
    api('/health'), api('/devices'), api('/metrics'), api('/admin/errors'),
  ]);
  const g = gauges(metricsText, [
    'ridgeline_store_bytes', 'ridgeline_gallery_fingers', 'ridgeline_review_queue_open', 'ridgeline_records',
    'ridgeline_golden_records',
  ]);
  const mib = (b) => (b === undefined ? '—' : `${fmtNumber(b / 1048576, 1)} MiB`);
  main.append(h('div', { class: 'cols' },
    h('section', { class: 'panel' }, h('h2', {}, t('admin.store')), kv('admin-store', [
      [t('admin.records'), fmtNumber(health.registry?.records ?? g.ridgeline_records ?? 0)],
      [t('admin.golden'), fmtNumber(health.registry?.golden_records ?? g.ridgeline_golden_records ?? 0)],
      [t('admin.queue'), fmtNumber(health.registry?.open_reviews ?? g.ridgeline_review_queue_open ?? 0)],
      [t('admin.gallery'), g.ridgeline_gallery_fingers === undefined ? '—' : fmtNumber(g.ridgeline_gallery_fingers)],
      [t('admin.size'), mib(g.ridgeline_store_bytes)],
      [t('admin.version'), `${health.version} (${health.revision})`],
      [t('admin.uptime'), `${fmtNumber(health.uptime_s)} s`],
    ])),
    h('section', { class: 'panel' }, h('h2', {}, t('admin.readers')),
      devices.available === false ? h('p', { class: 'warning' }, t('reader.unavailable', { why: devices.error || '' })) : null,
      (devices.devices || []).length
        ? h('table', { id: 'admin-readers' },
          h('thead', {}, h('tr', {}, [t('admin.reader'), t('admin.driver'), t('admin.mode'), t('admin.state')].map((x) => h('th', {}, x)))),
          h('tbody', {}, devices.devices.map((d) => h('tr', {}, h('td', {}, `${d.name} (${d.id})`), h('td', {}, d.driver), h('td', {}, d.mode),
            h('td', {}, d.error ? d.error : d.busy ? t('admin.busy') : d.open ? t('admin.ready') : t('admin.closed'))))))
        : h('p', { class: 'muted', id: 'admin-no-readers' }, t('reader.none')))));

  const errs = errors.errors || [];
  main.append(h('section', { class: 'panel' }, h('h2', {}, t('admin.errors')),
    errs.length
      ? h('table', { id: 'admin-errors' },
        h('thead', {}, h('tr', {}, [t('patient.when'), t('admin.route'), t('admin.status'), t('admin.message')].map((x) => h('th', {}, x)))),
        h('tbody', {}, errs.map((e) => h('tr', {}, h('td', {}, fmtDateTime(e.at)), h('td', {}, `${e.method} ${e.route}`), h('td', {}, e.status), h('td', {}, e.message)))))
      : h('p', { class: 'muted', id: 'admin-no-errors' }, t('admin.no_errors'))));

  const backupOut = h('p', { id: 'backup-result', 'aria-live': 'polite' });
  const backupForm = h('form', { class: 'actions', id: 'backup-form' },
    h('label', { class: 'field' }, t('admin.backup_dir'), h('input', { name: 'dir', id: 'backup-dir', size: 50, required: true, placeholder: '/var/backups/ridgeline/2026-11-29' })),
    h('button', { type: 'submit' }, t('admin.backup')));
  backupForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const { dir } = formValues(backupForm);
    clear(backupOut);
    if (!dir.startsWith('/')) {
      backupOut.textContent = t('admin.backup_absolute');
      return;
    }
    try {
      const r = await api('/admin/backup', { method: 'POST', body: { dir } });
      backupOut.textContent = t('admin.backup_done', { dir: r.dir || dir });
    } catch (e) {
      ctx.fail(e);
    }
  });
  main.append(h('section', { class: 'panel' }, h('h2', {}, t('admin.backups')), backupForm, backupOut));

  const current = requiredFields();
  const reqForm = h('form', { id: 'required-form' },
    h('fieldset', {}, h('legend', {}, t('admin.required')),
      REQUIRABLE.map((f) => h('label', { class: 'small', style: null }, h('input', { type: 'checkbox', name: f, checked: current.includes(f) }), ` ${t(`required.${f}`)} `))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('admin.save'))));
  reqForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = REQUIRABLE.filter((f) => reqForm.elements[f].checked);
    localStorage.setItem('rl.required', JSON.stringify(chosen));
    ctx.notify('ok', t('admin.saved'));
  });
  main.append(h('section', { class: 'panel' }, reqForm));
}
