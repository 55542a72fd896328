// The events viewer: one organization's events, newest first, with filters, keyset paging, a
// detail view verified in the browser, and a live mode. It is one component, reused by every
// page that shows a trail (the operator dashboard, the Admin Portal, the embeddable viewer):
// everything that differs between them (base path, credentials, links) comes in as options.
//
//   const viewer = mountEventsViewer(element, {
//     api,                      // the object of api.js (createApi): listEvents, getEvent, log…
//     organizationId,           // 'org_…'
//     eventId,                  // optional: open this event's detail first
//     onOpenEvent(event) {},    // optional: a row was opened (else the viewer shows the detail)
//     onBack() {},              // optional: "Back to events" in the detail (else the list shows)
//     eventHref(event) {},      // optional: the href of each row's link (for new tabs, copying)
//     listHref,                 // optional: the href of the "Back to events" link
//     pageSize: 25, liveReloadDelayMs: 150, liveRetryMs: 1000, emptyText,
//   });
//   viewer.showEvent(id); viewer.showList(); viewer.refresh(); viewer.setLive(true);
//   viewer.destroy();           // closes the live tail and any request in flight
//
// All server data is put in the page with textContent / createElement, never as HTML.

import { copyText, field, h, localInputToIso, showError, splitList, timeElement, uniqueId } from './dom.js';
import { verifyEvent } from './verify.js';

/** What an erased party (docs/retention.md) shows instead of its id. */
const ERASED = '(erased)';

function actorLabel(actor) {
  if (!actor) return '';
  if (actor.erased) return ERASED;
  return actor.name ? `${actor.name}` : `${actor.id}`;
}

function targetsCell(targets) {
  if (!Array.isArray(targets) || targets.length === 0) return h('span', { class: 'muted', text: 'none' });
  return h(
    'ul',
    { class: 'inline-list' },
    targets.map((target) =>
      h(
        'li',
        {},
        h('span', { class: 'tag', text: target.type }),
        ' ',
        target.erased ? ERASED : target.name ? `${target.name} (${target.id})` : target.id,
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The component

const DEFAULT_EMPTY_TEXT =
  'No events yet. Send one with POST /audit_logs/events (or the WorkOS SDKs) and it will appear here.';

export function mountEventsViewer(element, options) {
  const { api, organizationId } = options;
  if (!api || typeof api.listEvents !== 'function') throw new Error('mountEventsViewer needs an api (api.js createApi())');
  if (!organizationId) throw new Error('mountEventsViewer needs an organizationId');
  const pageSize = options.pageSize ?? 25;
  const liveReloadDelayMs = options.liveReloadDelayMs ?? 150;
  const liveRetryMs = options.liveRetryMs ?? 1000;
  const emptyText = options.emptyText ?? DEFAULT_EMPTY_TEXT;

  let destroyed = false;
  let filters = { actions: '', actorIds: '', targets: '', from: '', to: '', search: '', ...(options.filters ?? {}) };
  let cursor = null; // null (newest page), {before: id} or {after: id}
  let page = null; // the last list answer
  let listRequest = null; // AbortController of the list request in flight
  let listSequence = 0;
  let detailSequence = 0;
  let mode = 'list';
  const live = { on: false, controller: null, timer: null, reloadTimer: null, lastIndex: null, unseenSince: null, failures: 0 };

  // --- the list -------------------------------------------------------------------------------
  const inputs = {
    actions: h('input', { type: 'text', name: 'actions', autocomplete: 'off', spellcheck: 'false', placeholder: 'user.signed_in' }),
    actorIds: h('input', { type: 'text', name: 'actor_ids', autocomplete: 'off', spellcheck: 'false', placeholder: 'user_123' }),
    targets: h('input', { type: 'text', name: 'targets', autocomplete: 'off', spellcheck: 'false', placeholder: 'team' }),
    from: h('input', { type: 'datetime-local', name: 'range_start', step: '1' }),
    to: h('input', { type: 'datetime-local', name: 'range_end', step: '1' }),
    search: h('input', { type: 'search', name: 'search', autocomplete: 'off' }),
  };
  const actionOptions = h('datalist', { id: uniqueId('actions') });
  inputs.actions.setAttribute('list', actionOptions.id);

  const filterError = h('div', { class: 'error-box', role: 'alert', hidden: true });
  const applyButton = h('button', { type: 'submit', class: 'button primary', text: 'Apply' });
  const clearButton = h('button', { type: 'button', class: 'button', text: 'Clear' });
  const filterForm = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter events', novalidate: true, id: uniqueId('filters') },
    h(
      'div',
      { class: 'filter-grid' },
      field('Action', inputs.actions, 'Comma-separated for several'),
      field('Actor ID', inputs.actorIds),
      field('Target type', inputs.targets),
      field('From', inputs.from),
      field('To', inputs.to),
      field('Search', inputs.search, 'Text anywhere in the event'),
    ),
    actionOptions,
    h('div', { class: 'form-actions' }, applyButton, clearButton),
    filterError,
  );

  // On a phone the filters fold away behind this button (CSS shows it on small screens only).
  const filtersToggle = h('button', { type: 'button', class: 'button filters-toggle', 'aria-expanded': 'false', 'aria-controls': filterForm.id }, 'Filters');
  filtersToggle.addEventListener('click', () => {
    const expanded = !filterForm.classList.contains('is-expanded');
    filterForm.classList.toggle('is-expanded', expanded);
    filtersToggle.setAttribute('aria-expanded', expanded ? 'true' : 'false');
    if (expanded) inputs.actions.focus();
  });
  const liveButton = h('button', { type: 'button', class: 'button live-toggle', 'aria-pressed': 'false' }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Live');
  const liveStatus = h('span', { class: 'live-status muted', role: 'status', 'aria-live': 'polite' });
  const newerButton = h('button', { type: 'button', class: 'button', disabled: true }, '\u2190 Newer');
  const olderButton = h('button', { type: 'button', class: 'button', disabled: true }, 'Older \u2192');
  newerButton.setAttribute('aria-label', 'Newer');
  olderButton.setAttribute('aria-label', 'Older');
  const pageInfo = h('span', { class: 'muted page-info', 'aria-live': 'polite' });

  const listError = h('div', { class: 'error-box', role: 'alert', hidden: true });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data-table events-table' },
    h('caption', { class: 'visually-hidden', text: 'Events, newest first' }),
    h(
      'thead',
      {},
      h('tr', {}, ['Time', 'Action', 'Actor', 'Targets', 'Location'].map((name) => h('th', { scope: 'col', text: name }))),
    ),
    tbody,
  );
  const tableWrap = h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Events', tabindex: '0' }, table);
  const emptyState = h('div', { class: 'empty-state', hidden: true });
  const listView = h(
    'div',
    { class: 'viewer-list' },
    filterForm,
    h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-group' }, filtersToggle, liveButton, liveStatus)),
    listError,
    tableWrap,
    emptyState,
    h('nav', { class: 'pager', 'aria-label': 'Event pages' }, newerButton, pageInfo, olderButton),
  );

  // --- the detail -----------------------------------------------------------------------------
  const detailView = h('div', { class: 'viewer-detail', hidden: true });

  const root = h('div', { class: 'events-viewer' }, listView, detailView);
  element.replaceChildren(root);

  function writeFiltersToInputs() {
    for (const [name, input] of Object.entries(inputs)) input.value = filters[name] ?? '';
  }

  function readFiltersFromInputs() {
    const next = {};
    for (const [name, input] of Object.entries(inputs)) next[name] = input.value.trim();
    return next;
  }

  function queryFor(currentFilters, currentCursor) {
    const query = {
      organization_id: organizationId,
      limit: pageSize,
      actions: splitList(currentFilters.actions),
      actor_ids: splitList(currentFilters.actorIds),
      targets: splitList(currentFilters.targets),
      range_start: localInputToIso(currentFilters.from),
      range_end: localInputToIso(currentFilters.to),
      search: currentFilters.search,
    };
    if (currentCursor && currentCursor.before) query.before = currentCursor.before;
    if (currentCursor && currentCursor.after) query.after = currentCursor.after;
    return query;
  }

  function hasFilters() {
    return Object.values(filters).some((value) => value);
  }

  function showFilterCount() {
    const active = Object.values(filters).filter((value) => value).length;
    filtersToggle.textContent = active ? `Filters (${active})` : 'Filters';
  }

  function renderRows(events, newIds = new Set()) {
    tbody.replaceChildren(
      ...events.map((event) => {
        const link = h('a', { href: options.eventHref ? options.eventHref(event) : '#', class: 'row-link' }, timeElement(event.occurred_at));
        link.addEventListener('click', (click) => {
          if (click.button !== 0 || click.metaKey || click.ctrlKey || click.shiftKey || click.altKey) return;
          click.preventDefault();
          openEvent(event);
        });
        const isNew = newIds.has(event.id);
        const row = h(
          'tr',
          { class: isNew ? 'is-new' : null, dataset: { eventId: event.id } },
          h('td', { class: 'nowrap' }, link, isNew ? h('span', { class: 'badge new', text: 'New' }) : null),
          h('td', {}, h('code', { text: event.action })),
          h('td', {}, h('span', { text: actorLabel(event.actor) }), event.actor && event.actor.name ? h('span', { class: 'muted small block', text: event.actor.id }) : null),
          h('td', {}, targetsCell(event.targets)),
          h('td', { text: (event.context && event.context.location) || '' }),
        );
        // A click anywhere on the row opens it too (the link stays the keyboard path).
        row.addEventListener('click', (click) => {
          if (click.target.closest('a, button, input, select, textarea')) return;
          if (window.getSelection && String(window.getSelection())) return;
          openEvent(event);
        });
        return row;
      }),
    );
  }

  function renderPage(answer, newIds) {
    page = answer;
    const events = answer.data ?? [];
    renderRows(events, newIds);
    tableWrap.hidden = events.length === 0;
    emptyState.hidden = events.length !== 0;
    if (events.length === 0) {
      emptyState.replaceChildren(
        cursor
          ? h('p', { text: 'No more events in this direction.' })
          : hasFilters()
            ? h('p', { text: 'No events match these filters.' }, ' ', h('button', { type: 'button', class: 'link-button', text: 'Clear filters', on: { click: clearFilters } }))
            : h('p', { text: emptyText }),
      );
    }
    newerButton.disabled = !(answer.list_metadata && answer.list_metadata.before);
    olderButton.disabled = !(answer.list_metadata && answer.list_metadata.after);
    pageInfo.textContent = events.length ? `${events.length} event${events.length === 1 ? '' : 's'}${cursor ? '' : ', newest first'}` : '';
  }

  /**
   * Loads the page for the current filters and cursor. With `newSince` (a log size), the rows
   * at log positions from there on are highlighted as new.
   */
  async function loadList({ newSince = null } = {}) {
    if (destroyed) return;
    let query;
    try {
      query = queryFor(filters, cursor);
    } catch (error) {
      showError(filterError, error);
      return;
    }
    if (query.range_start && query.range_end && query.range_start > query.range_end) {
      showError(filterError, new Error('"From" must be before "To".'));
      return;
    }
    showError(filterError, null);
    showFilterCount();
    if (listRequest) listRequest.abort();
    const controller = new AbortController();
    listRequest = controller;
    const sequence = ++listSequence;
    tableWrap.setAttribute('aria-busy', 'true');
    try {
      const answer = await api.listEvents(query, { signal: controller.signal });
      if (destroyed || sequence !== listSequence) return;
      showError(listError, null);
      const newIds = new Set();
      if (newSince !== null) {
        for (const event of answer.data ?? []) if (event.log_index >= newSince) newIds.add(event.id);
      }
      renderPage(answer, newIds);
      if (newIds.size) {
        liveStatus.textContent = `${newIds.size} new event${newIds.size === 1 ? '' : 's'}`;
      }
    } catch (error) {
      if (error && error.name === 'AbortError') return;
      if (destroyed || sequence !== listSequence) return;
      // A 422 on the filters is shown next to them; anything else above the table.
      showError(error && error.status === 422 ? filterError : listError, error, error && error.status === 422 ? null : 'Could not load events');
    } finally {
      if (sequence === listSequence) tableWrap.removeAttribute('aria-busy');
    }
  }

  function applyFilters(submit) {
    if (submit) submit.preventDefault();
    filters = readFiltersFromInputs();
    cursor = null;
    refollow();
    loadList();
  }

  /** The filters changed: the live tail follows the new ones, from the log's head. */
  function refollow() {
    if (!live.on) return;
    live.lastIndex = null;
    follow();
  }

  function clearFilters() {
    filters = { actions: '', actorIds: '', targets: '', from: '', to: '', search: '' };
    writeFiltersToInputs();
    cursor = null;
    refollow();
    loadList();
  }

  filterForm.addEventListener('submit', applyFilters);
  clearButton.addEventListener('click', clearFilters);
  newerButton.addEventListener('click', () => {
    if (!page || !page.list_metadata.before) return;
    cursor = { before: page.list_metadata.before };
    loadList();
  });
  olderButton.addEventListener('click', () => {
    if (!page || !page.list_metadata.after) return;
    cursor = { after: page.list_metadata.after };
    loadList();
  });

  // Suggestions for the action filter (optional: a viewer without that endpoint works without).
  if (typeof api.listActions === 'function') {
    api
      .listActions({ limit: 100 })
      .then((answer) => {
        if (destroyed) return;
        actionOptions.replaceChildren(...(answer.data ?? []).map((action) => h('option', { value: action.name })));
      })
      .catch(() => {});
  }

  // --- live mode ------------------------------------------------------------------------------
  // Live mode follows the organization's live tail (GET /audit_logs/events/stream, server-sent
  // events) with the list's filters. Each event that arrives reloads the newest page with the
  // new rows highlighted (or, on an older page, offers to show the newest). The tail is open
  // only while the list is shown; when it drops, it is opened again after the last event seen
  // (Last-Event-ID), so nothing is missed.
  function stopFollowing() {
    clearTimeout(live.timer);
    live.timer = null;
    clearTimeout(live.reloadTimer);
    live.reloadTimer = null;
    if (live.controller) live.controller.abort();
    live.controller = null;
  }

  function follow() {
    stopFollowing();
    if (!live.on || destroyed || mode !== 'list') return;
    let query;
    try {
      const { limit, before, after, ...rest } = queryFor(filters, null);
      query = rest;
    } catch (error) {
      liveStatus.textContent = `Live: ${error.message}`;
      return;
    }
    const controller = new AbortController();
    live.controller = controller;
    api
      .followEvents(query, {
        signal: controller.signal,
        lastEventId: live.lastIndex,
        onOpen: () => {
          live.failures = 0;
          if (liveStatus.textContent.startsWith('Live: ')) liveStatus.textContent = 'Watching for new events';
          if (live.on && !destroyed) root.dataset.live = 'watching';
        },
        onEvent: (event) => {
          if (!live.on || destroyed || controller.signal.aborted) return;
          live.lastIndex = event.log_index;
          live.unseenSince = Math.min(live.unseenSince ?? event.log_index, event.log_index);
          if (cursor) {
            liveStatus.replaceChildren(
              'New events arrived. ',
              h('button', { type: 'button', class: 'link-button', text: 'Show newest', on: { click: showNewest } }),
            );
          } else if (!live.reloadTimer) {
            // A burst of events is one reload.
            live.reloadTimer = setTimeout(() => {
              live.reloadTimer = null;
              if (!live.on || destroyed || cursor) return;
              const since = live.unseenSince;
              live.unseenSince = null;
              loadList({ newSince: since });
            }, liveReloadDelayMs);
          }
        },
      })
      .then(
        () => retryFollowing(controller, null),
        (error) => retryFollowing(controller, error),
      );
  }

  /** The tail ended or failed: open it again (after the last event seen), waiting longer each time. */
  function retryFollowing(controller, error) {
    if (controller !== live.controller || controller.signal.aborted || !live.on || destroyed) return;
    live.controller = null;
    live.failures = (live.failures ?? 0) + 1;
    if (error && error.status >= 400 && error.status < 500 && error.status !== 429) {
      // Refused (filters, a session that ended): retrying would be refused the same way.
      liveStatus.textContent = `Live: ${error.message}`;
      return;
    }
    const delay = Math.min(liveRetryMs * 2 ** Math.min(live.failures - 1, 5), 30000);
    if (error) liveStatus.textContent = `Live: could not follow new events (${error.message}); retrying`;
    live.timer = setTimeout(follow, delay);
  }

  function showNewest() {
    cursor = null;
    liveStatus.textContent = 'Watching for new events';
    const since = live.unseenSince;
    live.unseenSince = null;
    loadList({ newSince: since });
  }

  async function setLive(on) {
    on = Boolean(on);
    if (on === live.on) return;
    live.on = on;
    liveButton.setAttribute('aria-pressed', on ? 'true' : 'false');
    liveButton.classList.toggle('is-on', on);
    stopFollowing();
    delete root.dataset.live;
    live.unseenSince = null;
    live.lastIndex = null;
    live.failures = 0;
    if (!on) {
      liveStatus.textContent = '';
      return;
    }
    liveStatus.textContent = 'Watching for new events';
    cursor = null;
    // The tail starts at the log's head when it opens: opened before the newest page is read,
    // so that nothing stored in between is missed (at worst an event is both listed and new).
    follow();
    await loadList();
  }

  liveButton.addEventListener('click', () => setLive(!live.on));

  // --- detail ---------------------------------------------------------------------------------
  function openEvent(event) {
    if (options.onOpenEvent) options.onOpenEvent(event);
    else showEvent(event.id);
  }

  function backToList(click) {
    if (click && (click.button !== 0 || click.metaKey || click.ctrlKey || click.shiftKey || click.altKey)) return;
    if (click) click.preventDefault();
    if (options.onBack) options.onBack();
    else showList();
  }

  function fact(term, ...value) {
    return [h('dt', { text: term }), h('dd', {}, ...value)];
  }

  function renderDetail(event) {
    const badge = h('p', { class: 'badge verification pending', role: 'status', 'aria-live': 'polite' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Verifying in this browser…');
    const proofDetails = h('dl', { class: 'facts small proof-facts' });
    const proofBox = h('details', { class: 'proof-details', hidden: true }, h('summary', { text: 'What was checked' }), proofDetails);
    const json = JSON.stringify(event, null, 2);
    const copyStatus = h('span', { class: 'muted small', role: 'status' });
    const copyButton = h('button', { type: 'button', class: 'button small', text: 'Copy JSON' });
    copyButton.addEventListener('click', () => copyText(json, copyStatus));
    const heading = h('h2', { tabindex: '-1', class: 'detail-title' }, h('code', { text: event.action }));
    const actor = event.actor ?? {};
    const context = event.context ?? {};
    detailView.replaceChildren(
      h('a', { href: options.listHref ?? '#', class: 'back-link', on: { click: backToList } }, '\u2190 Back to events'),
      h('div', { class: 'detail-header' }, heading, badge),
      proofBox,
      h(
        'dl',
        { class: 'facts event-facts' },
        fact('Event ID', h('code', { text: event.id })),
        fact('Occurred at', timeElement(event.occurred_at), h('span', { class: 'muted small block', text: event.occurred_at })),
        fact('Received at', timeElement(event.received_at), h('span', { class: 'muted small block', text: event.received_at })),
        actor.erased
          ? fact('Actor', `${ERASED} `, h('span', { class: 'muted', text: `(${actor.type ?? ''}; erased by the record at log position ${(event.erased_by ?? []).join(', ')})` }))
          : fact('Actor', `${actor.name ? `${actor.name} ` : ''}`, h('code', { text: actor.id ?? '' }), h('span', { class: 'muted', text: ` (${actor.type ?? ''})` })),
        fact('Targets', targetsCell(event.targets)),
        fact('Location', context.location ?? ''),
        context.user_agent ? fact('User agent', context.user_agent) : null,
        fact('Schema version', String(event.version ?? '')),
        fact('Log position', String(event.log_index ?? '')),
      ),
      h('div', { class: 'section-header' }, h('h3', { text: 'Full event' }), h('div', { class: 'toolbar-group' }, copyButton, copyStatus)),
      h('pre', { class: 'json', tabindex: '0', 'aria-label': 'Full event JSON' }, h('code', { text: json })),
    );
    return { badge, proofBox, proofDetails, heading };
  }

  async function showEvent(eventId) {
    if (destroyed) return;
    mode = 'detail';
    stopFollowing();
    listView.hidden = true;
    detailView.hidden = false;
    const sequence = ++detailSequence;
    const loading = h('p', { class: 'muted', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Loading the event…');
    detailView.replaceChildren(h('a', { href: options.listHref ?? '#', class: 'back-link', on: { click: backToList } }, '\u2190 Back to events'), loading);
    let event;
    try {
      event = await api.getEvent(eventId);
    } catch (error) {
      if (destroyed || sequence !== detailSequence) return;
      const box = h('div', { class: 'error-box', role: 'alert' });
      showError(box, error, 'Could not load the event');
      loading.replaceWith(box);
      return;
    }
    if (destroyed || sequence !== detailSequence) return;
    if (event.organization_id !== organizationId) {
      const box = h('div', { class: 'error-box', role: 'alert' });
      showError(box, new Error('This event belongs to another organization.'));
      loading.replaceWith(box);
      return;
    }
    const parts = renderDetail(event);
    parts.heading.focus({ preventScroll: false });
    const result = await verifyEvent({ api, event, onStep: (step) => {
      if (sequence === detailSequence) parts.badge.lastChild.textContent = step;
    } });
    if (destroyed || sequence !== detailSequence) return;
    parts.badge.classList.remove('pending');
    parts.badge.replaceChildren();
    if (result.verified) {
      parts.badge.classList.add('verified');
      parts.badge.append(h('span', { class: 'badge-icon', 'aria-hidden': 'true', text: '\u2713' }), `Verified: included in the signed checkpoint of size ${result.treeSize}`);
      parts.proofDetails.replaceChildren(
        ...fact('Checkpoint', `${result.origin}, ${result.treeSize} entries`),
        ...fact('Signed root', h('code', { text: result.root })),
        ...fact('Leaf hash', h('code', { text: result.leafHash })),
        ...fact('Signing key', h('code', { text: result.verifierKey ?? result.keyName })),
        ...fact('Trust', 'The signature was checked against the public key this server publishes. Compare it with the key you pinned for this deployment.'),
      );
      parts.proofBox.hidden = false;
    } else {
      parts.badge.classList.add('not-verified');
      parts.badge.append(h('span', { class: 'badge-icon', 'aria-hidden': 'true', text: '!' }), `Not verified: ${result.reason}`);
    }
  }

  function showList() {
    if (destroyed) return;
    detailSequence += 1;
    const wasDetail = mode === 'detail';
    mode = 'list';
    detailView.hidden = true;
    detailView.replaceChildren();
    listView.hidden = false;
    if (!page) loadList();
    else if (wasDetail && live.on) {
      // What arrived while the detail was open comes first when the tail opens again.
      loadList();
    }
    if (wasDetail || !live.controller) follow();
  }

  function destroy() {
    destroyed = true;
    live.on = false;
    stopFollowing();
    if (listRequest) listRequest.abort();
    root.remove();
  }

  writeFiltersToInputs();
  if (options.eventId) {
    showEvent(options.eventId);
  } else {
    loadList();
  }

  return {
    showEvent,
    showList,
    refresh: () => loadList(),
    setLive,
    isLive: () => live.on,
    getFilters: () => ({ ...filters }),
    get mode() {
      return mode;
    },
    destroy,
  };
}
