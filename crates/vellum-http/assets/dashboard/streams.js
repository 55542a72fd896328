// The log streams card of one organization: its streams with their state and last delivery,
// and a form to add one of the seven destinations. Shared by the operator dashboard (an
// organization's settings) and the Admin Portal (intent log_streams).
//
//   container.append(streamsCard({ api, organizationId, isAlive }));

import { busy, errorBox } from './ui.js';
import { field, h, showError, timeElement } from './dom.js';

const STREAM_TYPES = [
  ['GenericHttps', 'HTTPS endpoint (signed per Standard Webhooks)'],
  ['Datadog', 'Datadog'],
  ['Splunk', 'Splunk (HTTP Event Collector)'],
  ['S3', 'Amazon S3 or an S3-compatible bucket'],
  ['GoogleCloudStorage', 'Google Cloud Storage'],
  ['MicrosoftSentinel', 'Microsoft Sentinel (Logs Ingestion API)'],
  ['Snowflake', 'Snowflake (SQL API)'],
];
const OBJECT_STORAGE = new Set(['S3', 'GoogleCloudStorage']);
const DATADOG_REGIONS = ['US1', 'US3', 'US5', 'EU1', 'AP1', 'AP2', 'US1-FED'];

// Step-by-step setup of each destination, shown under the choice of destination.
const GUIDANCE = {
  GenericHttps: [
    'Make an HTTPS endpoint that accepts POST requests with a JSON array (or NDJSON) of events, and answers 2xx once it has them.',
    'Enter its URL. If the endpoint needs a credential, add it as a header (for example Authorization).',
    'After adding the stream, copy the signing secret: check each request’s webhook-signature with it (Standard Webhooks) and drop repeats by event id.',
  ],
  Datadog: [
    'In Datadog, open Organization Settings → API Keys and create a key for audit logs.',
    'Choose your Datadog site: the region in your Datadog address (US1 for app.datadoghq.com, EU1 for app.datadoghq.eu…).',
    'Paste the key. Events arrive in Logs with service:audit-logs.',
  ],
  Splunk: [
    'In Splunk, open Settings → Data inputs → HTTP Event Collector and create a token, with indexer acknowledgement off.',
    'Enter the collector’s address (https://your-splunk:8088) and the token.',
    'Optionally name an index the token may write to; otherwise the token’s default index is used.',
  ],
  S3: [
    'Create a bucket (Object Lock buckets work: every object carries a SHA-256 checksum).',
    'Create an access key whose only permission is s3:PutObject on that bucket (and prefix).',
    'Enter the bucket, its region, an optional prefix and the key. Events arrive as files of up to 1,000 events each.',
  ],
  GoogleCloudStorage: [
    'Create a bucket, and a service account with the Storage Object Creator role on it.',
    'In Cloud Storage → Settings → Interoperability, create an HMAC key for that service account.',
    'Enter the bucket, an optional prefix, the key’s access id and its secret.',
  ],
  MicrosoftSentinel: [
    'In Azure Monitor, create a data collection endpoint and a custom table with the columns TimeGenerated, id, event_type, organization_id, log_index and data.',
    'Create a data collection rule that sends a stream to that table; note the rule’s immutable id and the stream’s name.',
    'In Entra ID, register an application, create a client secret, and give the application the Monitoring Metrics Publisher role on the rule.',
    'Enter the endpoint, rule id, stream name, tenant id, client id and secret.',
  ],
  Snowflake: [
    'Create a table with the columns event_id STRING, event_type STRING, occurred_at TIMESTAMP_TZ, organization_id STRING, log_index NUMBER and data VARIANT.',
    'Create a user with a role that may insert into it, and set the user’s RSA public key (ALTER USER … SET RSA_PUBLIC_KEY).',
    'Enter the account identifier, user, database, schema, table, an optional warehouse, and the matching private key (PKCS #8 PEM, unencrypted).',
  ],
};

function streamDestination(stream) {
  const config = stream.config ?? {};
  if (stream.type === 'Datadog') return `Datadog ${config.region}${config.url ? ` (${config.url})` : ''}`;
  if (stream.type === 'Splunk') return `Splunk ${config.url}${config.index ? `, index ${config.index}` : ''}`;
  if (stream.type === 'Snowflake') return `Snowflake ${config.account}: ${config.database}.${config.schema}.${config.table}`;
  if (stream.type === 'MicrosoftSentinel') return `Microsoft Sentinel ${config.stream_name} (${config.rule_id}) at ${config.endpoint}`;
  if (OBJECT_STORAGE.has(stream.type)) {
    const where = `${stream.type === 'S3' ? 's3' : 'gs'}://${config.bucket}/${config.prefix ?? ''}`;
    return `${where}${config.endpoint ? ` at ${config.endpoint}` : ''} (${config.format === 'json' ? 'JSON' : 'NDJSON'})`;
  }
  return `${config.url} (${config.format === 'ndjson' ? 'NDJSON' : 'JSON'})`;
}

export function streamsCard({ api, organizationId: orgId, isAlive }) {
  const body = h('tbody');
  const errors = errorBox();
  const status = h('p', { class: 'success-text', role: 'status' });
  const empty = h('p', { class: 'muted small', text: 'No log stream: this organization’s events are not sent anywhere.', hidden: true });
  const table = h(
    'table',
    { class: 'data-table streams-table', hidden: true },
    h('caption', { class: 'visually-hidden', text: 'Log streams of this organization' }),
    h('thead', {}, h('tr', {}, ['Destination', 'State', 'Last delivery', 'Next position', ''].map((name) => h('th', { scope: 'col', text: name })))),
    body,
  );
  const secretBox = h('div', { class: 'secret-box', hidden: true, role: 'status' });

  const type = h('select', { name: 'type' }, STREAM_TYPES.map(([value, label]) => h('option', { value, text: label })));
  const url = h('input', { type: 'url', name: 'url', autocomplete: 'off', maxlength: '2048', placeholder: 'https://' });
  const format = h('select', { name: 'format' }, h('option', { value: 'json', text: 'JSON array' }), h('option', { value: 'ndjson', text: 'NDJSON' }));
  const headerName = h('input', { type: 'text', name: 'header_name', autocomplete: 'off', maxlength: '128', placeholder: 'Authorization' });
  const headerValue = h('input', { type: 'password', name: 'header_value', autocomplete: 'off', maxlength: '4096' });
  const region = h('select', { name: 'region' }, DATADOG_REGIONS.map((value) => h('option', { value, text: value })));
  const secret = h('input', { type: 'password', name: 'secret', autocomplete: 'off', maxlength: '4096' });
  const index = h('input', { type: 'text', name: 'index', autocomplete: 'off', maxlength: '4096' });
  const bucket = h('input', { type: 'text', name: 'bucket', autocomplete: 'off', maxlength: '63' });
  const bucketRegion = h('input', { type: 'text', name: 'bucket_region', autocomplete: 'off', maxlength: '32', placeholder: 'us-east-1' });
  const prefix = h('input', { type: 'text', name: 'prefix', autocomplete: 'off', maxlength: '512', placeholder: 'audit/' });
  const accessKeyId = h('input', { type: 'text', name: 'access_key_id', autocomplete: 'off', maxlength: '4096' });
  const objectFields = [
    field('Bucket', bucket),
    field('Region', bucketRegion, 'Amazon S3 only; us-east-1 when empty.'),
    field('Prefix (optional)', prefix, 'Objects are written under it, one per 1,000 log positions.'),
    field('Access key id', accessKeyId, 'An HMAC key’s access id for Google Cloud Storage.'),
  ];
  const ruleId = h('input', { type: 'text', name: 'rule_id', autocomplete: 'off', maxlength: '256', placeholder: 'dcr-…' });
  const streamName = h('input', { type: 'text', name: 'stream_name', autocomplete: 'off', maxlength: '256', placeholder: 'Custom-…' });
  const tenantId = h('input', { type: 'text', name: 'tenant_id', autocomplete: 'off', maxlength: '256' });
  const clientId = h('input', { type: 'text', name: 'client_id', autocomplete: 'off', maxlength: '256' });
  const sentinelFields = [
    field('Data collection rule id', ruleId, 'The rule’s immutable id.'),
    field('Stream name', streamName, 'The stream the rule declares.'),
    field('Tenant id', tenantId),
    field('Client id', clientId, 'An app registration with the Monitoring Metrics Publisher role on the rule.'),
  ];
  const snowflakeInputs = ['account', 'user', 'database', 'schema', 'table', 'warehouse'].map((name) =>
    h('input', { type: 'text', name: `snowflake_${name}`, autocomplete: 'off', maxlength: '255' }),
  );
  const privateKey = h('textarea', { name: 'private_key', rows: '4', autocomplete: 'off', spellcheck: 'false', placeholder: '-----BEGIN PRIVATE KEY-----' });
  const snowflakeFields = [
    field('Account', snowflakeInputs[0], 'The account identifier, such as myorg-myaccount.'),
    field('User', snowflakeInputs[1], 'The user whose RSA public key is set.'),
    field('Database', snowflakeInputs[2]),
    field('Schema', snowflakeInputs[3]),
    field('Table', snowflakeInputs[4]),
    field('Warehouse (optional)', snowflakeInputs[5]),
    field('Private key', privateKey, 'Unencrypted PKCS #8 PEM; write-only.'),
  ];
  const urlField = field('URL', url, 'Where batches are posted (https).');
  const formatField = field('Format', format);
  const headerNameField = field('Extra header (optional)', headerName, 'For example Authorization; its value is kept secret.');
  const headerValueField = field('Header value', headerValue);
  const regionField = field('Datadog site', region);
  const secretField = field('API key', secret, 'Write-only: it is never shown again.');
  const indexField = field('Index (optional)', index, 'The token’s default index when empty.');
  const create = h('button', { type: 'submit', class: 'button primary', text: 'Add the stream' });
  const guidance = h('ol', { class: 'stream-guidance small', 'aria-label': 'Setup steps' });
  const form = h(
    'form',
    { class: 'inline-form', novalidate: true },
    field('Destination', type),
    guidance,
    urlField,
    formatField,
    headerNameField,
    headerValueField,
    ...objectFields,
    ...sentinelFields,
    ...snowflakeFields,
    regionField,
    secretField,
    indexField,
    create,
  );

  function showFields() {
    const kind = type.value;
    guidance.replaceChildren(...(GUIDANCE[kind] ?? []).map((step) => h('li', { text: step })));
    format.value = OBJECT_STORAGE.has(kind) ? 'ndjson' : 'json';
    formatField.hidden = kind !== 'GenericHttps';
    headerNameField.hidden = kind !== 'GenericHttps';
    headerValueField.hidden = kind !== 'GenericHttps';
    regionField.hidden = kind !== 'Datadog';
    secretField.hidden = kind === 'GenericHttps';
    indexField.hidden = kind !== 'Splunk';
    urlField.hidden = kind === 'Datadog' || OBJECT_STORAGE.has(kind);
    for (const objectField of objectFields) objectField.hidden = !OBJECT_STORAGE.has(kind);
    objectFields[1].hidden = kind !== 'S3';
    formatField.hidden = kind !== 'GenericHttps' && !OBJECT_STORAGE.has(kind);
    for (const sentinelField of sentinelFields) sentinelField.hidden = kind !== 'MicrosoftSentinel';
    for (const snowflakeField of snowflakeFields) snowflakeField.hidden = kind !== 'Snowflake';
    if (kind === 'Snowflake') {
      secretField.hidden = true;
      urlField.hidden = true;
    }
    secretField.querySelector('label').textContent =
      kind === 'Splunk'
        ? 'HEC token'
        : OBJECT_STORAGE.has(kind)
          ? 'Secret access key'
          : kind === 'MicrosoftSentinel'
            ? 'Client secret'
            : 'API key';
    urlField.querySelector('label').textContent = kind === 'MicrosoftSentinel' ? 'Data collection endpoint' : 'URL';
    url.placeholder =
      kind === 'Splunk'
        ? 'https://splunk.example.com:8088'
        : kind === 'MicrosoftSentinel'
          ? 'https://….ingest.monitor.azure.com'
          : 'https://';
  }
  type.addEventListener('change', showFields);
  showFields();

  async function act(button, work, done) {
    showError(errors, null);
    status.textContent = '';
    busy(button, true);
    try {
      await work();
      status.textContent = done;
      await load();
    } catch (error) {
      showError(errors, error, 'The stream could not be changed');
    } finally {
      busy(button, false);
    }
  }

  function row(stream) {
    const toggle = h('button', { type: 'button', class: 'button small', text: stream.state === 'inactive' ? 'Enable' : 'Disable' });
    toggle.addEventListener('click', () =>
      act(toggle, () => api.updateStream(stream.id, { state: stream.state === 'inactive' ? 'active' : 'inactive' }), 'Stream updated.'),
    );
    const retry = h('button', { type: 'button', class: 'button small', text: 'Retry now', hidden: stream.state !== 'invalid' && stream.state !== 'error' });
    retry.addEventListener('click', () => act(retry, () => api.updateStream(stream.id, { state: 'active' }), 'The stream will be retried now.'));
    const test = h('button', { type: 'button', class: 'button small', text: 'Send a test' });
    test.addEventListener('click', async () => {
      showError(errors, null);
      status.textContent = '';
      busy(test, true);
      try {
        const outcome = await api.testStream(stream.id);
        if (outcome.success) status.textContent = 'The destination accepted the test event (action vellum.stream.test).';
        else showError(errors, new Error(outcome.message), 'The destination did not accept the test event');
      } catch (error) {
        showError(errors, error, 'The test could not be sent');
      } finally {
        busy(test, false);
      }
    });
    const replay = h('button', { type: 'button', class: 'button small', text: 'Replay all' });
    replay.addEventListener('click', () => {
      if (!window.confirm('Send every event of this organization to this destination again?')) return;
      act(replay, () => api.replayStream(stream.id, { from_log_index: 0 }), 'Replaying from the first event.');
    });
    const remove = h('button', { type: 'button', class: 'button small danger', text: 'Delete' });
    remove.addEventListener('click', () => {
      if (!window.confirm('Delete this stream? Deliveries stop.')) return;
      act(remove, () => api.deleteStream(stream.id), 'Stream deleted.');
    });
    const look = { active: 'ready', error: 'error', invalid: 'error', inactive: 'pending' }[stream.state] ?? 'pending';
    const state = h('span', { class: `badge state-${look}`, text: stream.state });
    return h(
      'tr',
      { 'data-stream': stream.id },
      h('td', {}, h('div', { text: streamDestination(stream) }), h('div', { class: 'muted small', text: stream.id })),
      h('td', {}, state, stream.error ? h('div', { class: 'error-text small', text: stream.error }) : null),
      h('td', {}, stream.last_synced_at ? timeElement(stream.last_synced_at) : h('span', { class: 'muted', text: 'never' })),
      h('td', { text: String(stream.next_log_index) }),
      h('td', { class: 'actions' }, test, toggle, retry, replay, remove),
    );
  }

  async function load() {
    try {
      const answer = await api.listStreams(orgId);
      if (!isAlive()) return;
      const streams = answer.data ?? [];
      empty.hidden = streams.length > 0;
      table.hidden = streams.length === 0;
      body.replaceChildren(...streams.map(row));
    } catch (error) {
      if (isAlive()) showError(errors, error, 'Could not load the log streams');
    }
  }

  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    const kind = type.value;
    const config = {};
    if (kind === 'GenericHttps' || kind === 'Splunk') config.url = url.value.trim();
    if (kind === 'Snowflake') {
      ['account', 'user', 'database', 'schema', 'table', 'warehouse'].forEach((name, index) => {
        const value = snowflakeInputs[index].value.trim();
        if (value) config[name] = value;
      });
      config.private_key = privateKey.value;
    }
    if (kind === 'MicrosoftSentinel') {
      config.endpoint = url.value.trim();
      config.rule_id = ruleId.value.trim();
      config.stream_name = streamName.value.trim();
      config.tenant_id = tenantId.value.trim();
      config.client_id = clientId.value.trim();
      config.client_secret = secret.value;
    }
    if (OBJECT_STORAGE.has(kind)) {
      config.bucket = bucket.value.trim();
      if (kind === 'S3' && bucketRegion.value.trim()) config.region = bucketRegion.value.trim();
      if (prefix.value.trim()) config.prefix = prefix.value.trim();
      config.format = format.value === 'json' ? 'json' : 'ndjson';
      config.access_key_id = accessKeyId.value.trim();
      config.secret_access_key = secret.value;
    }
    if (kind === 'GenericHttps') {
      config.format = format.value;
      if (headerName.value.trim()) config.headers = { [headerName.value.trim()]: headerValue.value };
    }
    if (kind === 'Datadog') {
      config.region = region.value;
      config.api_key = secret.value;
    }
    if (kind === 'Splunk') {
      config.token = secret.value;
      if (index.value.trim()) config.index = index.value.trim();
    }
    secretBox.hidden = true;
    await act(
      create,
      async () => {
        const created = await api.createStream({ organization_id: orgId, type: kind, config });
        if (created.signing_secret) {
          secretBox.replaceChildren(
            h('p', { text: 'Signing secret: copy it now, it is not shown again. Receivers check each request’s webhook-signature with it.' }),
            h('code', { class: 'secret', text: created.signing_secret }),
          );
          secretBox.hidden = false;
        }
        for (const input of [url, headerName, headerValue, secret, index, bucket, bucketRegion, prefix, accessKeyId, ruleId, streamName, tenantId, clientId, privateKey, ...snowflakeInputs]) input.value = '';
      },
      'Stream added: events logged from now on are delivered.',
    );
  });

  load();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'streams-heading' },
    h('h2', { id: 'streams-heading', text: 'Log streams' }),
    h(
      'p',
      { class: 'muted small' },
      'Each stream delivers this organization’s events, in order and at least once, to a SIEM or an endpoint. ' +
        'A destination that refuses the credentials makes the stream invalid until it is retried or changed.',
    ),
    empty,
    table,
    errors,
    status,
    secretBox,
    h('h3', { text: 'Add a stream' }),
    form,
  );
}
