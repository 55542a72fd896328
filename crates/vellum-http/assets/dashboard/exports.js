// The exports panel of one organization: start a CSV or NDJSON export with filters, follow it
// until its file is ready, download it. Shared by the operator dashboard and the Admin Portal.
//
//   mountExports(container, { api, organizationId, onLeave });

import { announce, busy, errorBox } from './ui.js';
import { field, h, localInputToIso, showError, splitList, timeElement, uniqueId } from './dom.js';

const EXPORT_POLL_MS = 1000;

function storedExports(orgId) {
  try {
    const value = JSON.parse(sessionStorage.getItem(`vellum.exports.${orgId}`) ?? '[]');
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

function storeExports(orgId, list) {
  try {
    sessionStorage.setItem(`vellum.exports.${orgId}`, JSON.stringify(list.slice(0, 50)));
  } catch {
    // Storage full or disabled: the list just does not survive a reload.
  }
}

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function mountExports(container, { api, organizationId: orgId, onLeave }) {
  let alive = true;
  const timers = new Set();
  onLeave(() => {
    alive = false;
    for (const timer of timers) clearTimeout(timer);
  });

  const formatName = uniqueId('format');
  const csv = h('input', { type: 'radio', name: formatName, value: 'csv', checked: true, id: uniqueId('csv') });
  const ndjson = h('input', { type: 'radio', name: formatName, value: 'ndjson', id: uniqueId('ndjson') });
  const from = h('input', { type: 'datetime-local', step: '1', name: 'range_start' });
  const to = h('input', { type: 'datetime-local', step: '1', name: 'range_end' });
  const actions = h('input', { type: 'text', name: 'actions', autocomplete: 'off', spellcheck: 'false' });
  const actorIds = h('input', { type: 'text', name: 'actor_ids', autocomplete: 'off', spellcheck: 'false' });
  const actorNames = h('input', { type: 'text', name: 'actor_names', autocomplete: 'off' });
  const targets = h('input', { type: 'text', name: 'targets', autocomplete: 'off', spellcheck: 'false' });
  const start = h('button', { type: 'submit', class: 'button primary', text: 'Start export' });
  const errors = errorBox();
  const form = h(
    'form',
    { class: 'export-form', novalidate: true, 'aria-labelledby': 'export-heading' },
    h(
      'fieldset',
      { class: 'radio-group' },
      h('legend', { text: 'Format' }),
      h('label', { for: csv.id }, csv, ' CSV'),
      h('label', { for: ndjson.id }, ndjson, ' NDJSON (verifiable offline)'),
    ),
    h(
      'div',
      { class: 'filter-grid' },
      field('From', from, 'Empty: from the first event'),
      field('To', to, 'Empty: up to now'),
      field('Actions', actions, 'Comma-separated'),
      field('Actor IDs', actorIds, 'Comma-separated'),
      field('Actor names', actorNames, 'Comma-separated'),
      field('Target types', targets, 'Comma-separated'),
    ),
    errors,
    h('div', { class: 'form-actions' }, start),
  );
  const list = h('ul', { class: 'export-list', 'aria-live': 'polite' });
  const empty = h('p', { class: 'empty-state', text: 'No exports started in this browser session yet.' });

  container.replaceChildren(
    h('section', { class: 'card' }, h('h2', { id: 'export-heading', text: 'Start an export' }), form),
    h(
      'section',
      { 'aria-labelledby': 'export-list-heading' },
      h('h2', { id: 'export-list-heading', text: 'Exports from this session' }),
      h('p', { class: 'muted small', text: 'Download links are valid for 10 minutes; reopen this tab for a fresh one.' }),
      empty,
      list,
    ),
  );

  const entries = new Map(); // id → {item, record}

  function summary(record) {
    const parts = [];
    if (record.filter) {
      const f = record.filter;
      if (f.actions && f.actions.length) parts.push(`actions ${f.actions.join(', ')}`);
      if (f.actor_ids && f.actor_ids.length) parts.push(`actor ids ${f.actor_ids.join(', ')}`);
      if (f.actor_names && f.actor_names.length) parts.push(`actors ${f.actor_names.join(', ')}`);
      if (f.targets && f.targets.length) parts.push(`targets ${f.targets.join(', ')}`);
      if (f.range_start_set) parts.push(`from ${f.range_start}`);
      if (f.range_end_set) parts.push(`to ${f.range_end}`);
    }
    return parts.length ? parts.join('; ') : 'all events';
  }

  function renderEntry(record, exportObject, problem) {
    let entry = entries.get(record.id);
    if (!entry) {
      const item = h('li', { class: 'export-item card', dataset: { exportId: record.id } });
      entry = { item, record };
      entries.set(record.id, entry);
      list.prepend(item);
    }
    empty.hidden = entries.size > 0;
    const state = exportObject ? exportObject.state : 'unknown';
    const stateNode = h('span', { class: ['badge', `state-${state}`] });
    const detail = h('div', { class: 'export-state' });
    if (problem) {
      stateNode.textContent = 'unknown';
      detail.append(h('span', { class: 'error-text', text: problem }));
    } else if (state === 'pending') {
      stateNode.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'pending');
      detail.append(h('span', { class: 'muted', text: 'Preparing the file\u2026' }));
    } else if (state === 'ready') {
      stateNode.textContent = 'ready';
      detail.append(
        h('a', { class: 'button primary small', href: exportObject.url, download: '', text: 'Download' }),
        h('span', { class: 'muted', text: ` ${exportObject.events ?? '?'} events, ${formatBytes(exportObject.bytes)}` }),
      );
    } else if (state === 'error') {
      stateNode.textContent = 'error';
      detail.append(h('span', { class: 'error-text', text: exportObject.error || 'The export failed.' }));
    } else if (state === 'expired') {
      stateNode.textContent = 'expired';
      detail.append(h('span', { class: 'muted', text: 'The file was deleted; start a new export.' }));
    } else {
      stateNode.textContent = state;
    }
    entry.item.replaceChildren(
      h(
        'div',
        { class: 'export-head' },
        h('strong', { text: record.format === 'ndjson' ? 'NDJSON' : 'CSV' }),
        ' ',
        stateNode,
        ' ',
        h('span', { class: 'muted small' }, 'started ', timeElement(record.created_at)),
      ),
      h('p', { class: 'small' }, h('code', { text: record.id }), ' \u00b7 ', summary(record)),
      detail,
    );
  }

  async function poll(record) {
    if (!alive) return;
    try {
      const exportObject = await api.getExport(record.id);
      if (!alive) return;
      renderEntry(record, exportObject);
      if (exportObject.state === 'pending') {
        const timer = setTimeout(() => {
          timers.delete(timer);
          poll(record);
        }, EXPORT_POLL_MS);
        timers.add(timer);
      } else if (exportObject.state === 'ready') {
        announce(`Export ready: ${exportObject.events ?? ''} events.`);
      }
    } catch (error) {
      if (alive) renderEntry(record, null, `Could not get the export: ${error.message}`);
    }
  }

  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    showError(errors, null);
    let body;
    let filter;
    try {
      const rangeStart = localInputToIso(from.value);
      const rangeEnd = localInputToIso(to.value);
      body = {
        organization_id: orgId,
        format: ndjson.checked ? 'ndjson' : 'csv',
        // The API needs both ends: an empty field means "from the start" / "up to now".
        range_start: rangeStart || '1970-01-01T00:00:00.000Z',
        range_end: rangeEnd || new Date(Date.now() + 60_000).toISOString(),
      };
      for (const [name, input] of [['actions', actions], ['actor_ids', actorIds], ['actor_names', actorNames], ['targets', targets]]) {
        const values = splitList(input.value);
        if (values.length) body[name] = values;
      }
      filter = { ...body, range_start_set: Boolean(rangeStart), range_end_set: Boolean(rangeEnd) };
    } catch (error) {
      showError(errors, error);
      return;
    }
    busy(start, true);
    try {
      const exportObject = await api.createExport(body);
      const record = { id: exportObject.id, format: exportObject.format, created_at: exportObject.created_at, filter };
      storeExports(orgId, [record, ...storedExports(orgId).filter((item) => item.id !== record.id)]);
      renderEntry(record, exportObject);
      announce('Export started.');
      if (exportObject.state === 'pending') poll(record);
    } catch (error) {
      showError(errors, error, 'Could not start the export');
    } finally {
      busy(start, false);
    }
  });

  const saved = storedExports(orgId);
  empty.hidden = saved.length > 0;
  for (const record of [...saved].reverse()) {
    renderEntry(record, { state: 'pending' });
    poll(record);
  }
}
