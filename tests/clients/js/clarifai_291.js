// Drive npm `clarifai` 2.9.1 against a live server; NODE_PATH points at the cached node_modules.
//
// Config (JSON on stdin): base_url, key, prefix, png_b64, image_url, app_id, scoped (bool); photos
// (name -> path of a JPEG: cat, face, coffee) and photo_urls (the same on the loopback image host).
// Pointing 2.9.1 at a server: `new Clarifai.App({apiKey, apiEndpoint: base_url})` (or the
// API_ENDPOINT environment variable); every call goes to `${apiEndpoint}/v2/...`. With `userId`
// and `appId` options as well, calls go to `${apiEndpoint}/v2/users/${userId}/apps/${appId}/...`.
// Prints {"steps": {...}} as its last stdout line, like the Python scripts.
'use strict';

const fs = require('fs');
const Clarifai = require('clarifai');

const cfg = JSON.parse(fs.readFileSync(0, 'utf8'));
const P = cfg.prefix;
const results = {};
const GENERAL_VERSION = 'aa9ca48295b37401f8af92ad1af0d91d';
const PHOTO_B64 = Object.fromEntries(Object.entries(cfg.photos || {}).map(
  ([name, path]) => [name, fs.readFileSync(path).toString('base64')]));
const PHOTO_URL = cfg.photo_urls || {};

// Every request the client makes (method and URL), from an interceptor on the axios instance the
// clarifai package itself loads: shows which endpoints a call really used.
const sent = [];
const clientAxios = require(require.resolve('axios', {paths: [require.resolve('clarifai')]}));
clientAxios.interceptors.request.use((config) => {
  sent.push(`${config.method.toUpperCase()} ${config.url}`);
  return config;
});

async function withRequests(fn) {
  const start = sent.length;
  const value = await fn();
  return {value, requests: sent.slice(start)};
}

function describe(err) {
  const out = {type: (err && err.constructor && err.constructor.name) || typeof err,
    message: String((err && err.message) || err).slice(0, 2000)};
  // The client rejects with the axios error (a non-2xx answer) or the axios response itself
  // (a 2xx whose status.code is not 10000).
  const response = err && (err.response || (err.status && err.data !== undefined ? err : null));
  if (response) {
    out.http_status = response.status;
    out.url = response.config && response.config.url;
    out.body = response.data;
  }
  if (err && err.stack) {
    out.traceback = String(err.stack).slice(-3000);
  }
  return out;
}

async function step(name, fn) {
  try {
    const value = await fn();
    results[name] = {ok: true, value: value === undefined ? null : value};
    return value;
  } catch (err) {
    results[name] = {ok: false, error: describe(err)};
    return null;
  }
}

const conceptView = (c) => ({id: c.id, name: c.name, value: c.rawData.value === undefined ? null : c.rawData.value});
const inputView = (i) => ({
  id: i.id,
  url: i.imageUrl === undefined ? null : i.imageUrl,
  concepts: (i.rawData.data.concepts || []).map((c) => ({id: c.id, value: c.value === undefined ? null : c.value})),
});
const conceptOf = (c) => ({id: c.id, name: c.name, value: c.value});
const boxOf = (b = {}) => ({top_row: b.top_row || 0, left_col: b.left_col || 0, bottom_row: b.bottom_row || 0,
  right_col: b.right_col || 0});
const outputView = (o) => ({
  id: o.id,
  status: o.status.code,
  model_id: o.model.id,
  version_id: o.model.model_version && o.model.model_version.id,
  input_id: o.input && o.input.id,
  concepts: ((o.data || {}).concepts || []).map(conceptOf),
  regions: ((o.data || {}).regions || []).map((r) => ({id: r.id, value: r.value, box: boxOf((r.region_info || {}).bounding_box),
    concepts: ((r.data || {}).concepts || []).map(conceptOf)})),
});
const predictView = (response) => ({status: response.status.code, outputs: response.outputs.map(outputView)});
const searchView = (response) => ({id: response.id, status: response.status.code,
  hits: response.hits.map((h) => ({id: h.input.id, score: h.score}))});
const each = (collection, view) => Array.from({length: collection.length}, (_, k) => view(collection[k]));

async function allPages(list, limit = 50) {
  const ids = [];
  for (let page = 1; page <= limit; page++) {
    const got = await list({page, perPage: 20});
    if (!got.length) {
      return ids;
    }
    ids.push(...got.rawData.map((x) => x.id));
  }
  throw new Error(`paging did not end after ${limit} pages`);
}

async function main() {
  const options = {apiKey: cfg.key, apiEndpoint: cfg.base_url};
  if (cfg.scoped) {
    options.userId = 'me';
    options.appId = cfg.app_id;
  }
  const app = new Clarifai.App(options);
  results.base_path = {ok: true, value: app._config.basePath};

  await step('inputs_create', async () => each(await app.inputs.create([
    {base64: cfg.png_b64, id: P + 'red', concepts: [{id: P + 'color', value: true}, {id: P + 'not-color', value: false}]},
    {url: cfg.image_url, id: P + 'url', concepts: [{id: P + 'color'}]},
  ]), inputView));
  await step('inputs_get', async () => inputView(await app.inputs.get(P + 'red')));
  // regions pass through formatInput as given; Input reads them back into Region objects
  await step('inputs_regions', async () => {
    const box = (top_row, left_col, bottom_row, right_col) => ({bounding_box: {top_row, left_col, bottom_row, right_col}});
    await app.inputs.create({base64: cfg.png_b64, id: P + 'regions', regions: [
      {id: 'r1', region_info: box(0.1, 0.2, 0.5, 0.6), data: {concepts: [{id: P + 'logo', value: true}]}},
      {region_info: box(0, 0, 0.3, 0.3), data: {concepts: [{id: P + 'logo', value: false}]}},
    ]});
    const got = await app.inputs.get(P + 'regions');
    await app.inputs.delete(P + 'regions');
    return Array.from(got.regions).map((r) => ({id: r.id, box: [r.top, r.left, r.bottom, r.right]}));
  });
  await step('inputs_get_missing', async () => {
    try {
      await app.inputs.get(P + 'missing');
    } catch (err) {
      const d = describe(err);
      return {http_status: d.http_status, code: d.body && d.body.status && d.body.status.code};
    }
    return {http_status: 200, code: null};
  });
  await step('inputs_list', async () => allPages((o) => app.inputs.list(o)));
  await step('concepts_create', async () => each(await app.concepts.create([{id: P + 'concept', name: 'Jsclient ' + P}]), conceptView));
  await step('concepts_get', async () => conceptView(await app.concepts.get(P + 'concept')));
  await step('concepts_list', async () => allPages((o) => app.concepts.list(o)));
  await step('concepts_search', async () => each(await app.concepts.search('jsclient ' + P + '*'), conceptView));
  await step('concepts_update', async () => each(await app.concepts.update({id: P + 'concept', name: 'Renamed ' + P}), conceptView));
  await step('models_list', async () => (await app.models.list()).length);
  await step('inputs_delete', async () => {
    const response = await app.inputs.delete(P + 'url');
    return response.data.status.code;
  });
  await step('inputs_list_after_delete', async () => allPages((o) => app.inputs.list(o)));
  await predictAndSearch(app);
  await feedback(app);
}

function prior(name) {
  const got = results[name];
  if (!got || !got.ok) {
    throw new Error(`needs step ${name}, which failed`);
  }
  return got.value;
}

async function feedback(app) {
  const info = () => ({endUserId: P + 'user', sessionId: P + 'session'});
  // models.feedback(model, url, {id, data, info}) posts {"input": {id, data: {image: {url}, ...data},
  // feedback_info}} with event_type "annotation" to /models/{id}[/versions/{version}]/feedback
  await step('feedback_concepts', async () => (await app.models.feedback(Clarifai.GENERAL_MODEL, PHOTO_URL.cat, {
    id: P + 'cat',
    data: {concepts: [{id: 'cat', value: true}, {id: 'dog', value: false}]},
    info: Object.assign(info(), {outputId: prior('predict_url').outputs[0].id}),
  })).status.code);
  await step('feedback_concepts_version', async () => (await app.models.feedback(
    {id: Clarifai.GENERAL_MODEL, version: GENERAL_VERSION}, PHOTO_URL.cat, {
      id: P + 'cat',
      data: {concepts: [{id: 'tiger cat', value: false}]},
      info: Object.assign(info(), {outputId: prior('predict_id_version').value.outputs[0].id}),
    })).status.code);
  await step('feedback_regions', async () => {
    const face = prior('predict_face').outputs[0];
    const concepts = [{id: 'face', value: true}];
    return (await app.models.feedback(Clarifai.FACE_DETECT_MODEL, PHOTO_URL.face, {
      id: P + 'face',
      data: {regions: [
        {id: face.regions[0].id, region_info: {feedback: 'accurate'}, data: {concepts}},
        {region_info: {bounding_box: {top_row: 0.5, left_col: 0.3, bottom_row: 0.7, right_col: 0.5}, feedback: 'misplaced'},
          data: {concepts}},
        {region_info: {bounding_box: {top_row: 0, left_col: 0, bottom_row: 0.1, right_col: 0.1}, feedback: 'not_detected'},
          data: {concepts}},
        {region_info: {bounding_box: {top_row: 0.8, left_col: 0.8, bottom_row: 0.9, right_col: 0.9}, feedback: 'false_positive'},
          data: {concepts: [{id: 'face', value: false}]}},
      ]},
      info: Object.assign(info(), {outputId: face.id}),
    })).status.code;
  });
  await step('feedback_search', async () => (await app.inputs.searchFeedback(
    P + 'cat', prior('search_predicted').id, P + 'user', P + 'session')).status.code);
}

async function predictAndSearch(app) {
  const cat = {base64: PHOTO_B64.cat};
  await step('predict_general_model', async () => predictView(await app.models.predict(Clarifai.GENERAL_MODEL, cat)));
  await step('predict_url', async () => predictView(await app.models.predict(Clarifai.GENERAL_MODEL, PHOTO_URL.cat)));
  await step('predict_id_version', async () => withRequests(async () => predictView(
    await app.models.predict({id: Clarifai.GENERAL_MODEL, version: GENERAL_VERSION}, cat))));
  // predict({name}) first asks POST /v2/models/searches for the model, then predicts with the
  // version the search answered.
  await step('predict_name', async () => withRequests(async () => predictView(
    await app.models.predict({name: 'general-v1.3'}, cat))));
  await step('predict_max_concepts', async () => predictView(
    await app.models.predict(Clarifai.GENERAL_MODEL, cat, {maxConcepts: 3})));
  await step('predict_face', async () => predictView(
    await app.models.predict(Clarifai.FACE_DETECT_MODEL, {base64: PHOTO_B64.face})));

  await step('search_inputs_create', async () => each(await app.inputs.create([
    {base64: PHOTO_B64.cat, id: P + 'cat', concepts: [{id: P + 'pet', value: true}]},
    {base64: PHOTO_B64.face, id: P + 'face', concepts: [{id: P + 'person', value: true}, {id: P + 'pet', value: false}]},
    {url: PHOTO_URL.coffee, id: P + 'coffee'},
  ]), inputView));
  await step('search_annotated', async () => searchView(await app.inputs.search({concept: {id: P + 'pet', type: 'input'}})));
  await step('search_predicted', async () => searchView(await app.inputs.search({concept: {name: 'cat'}})));
  await step('search_image_base64', async () => searchView(await app.inputs.search({input: {base64: PHOTO_B64.cat}})));
  await step('search_image_url', async () => searchView(await app.inputs.search({input: {url: PHOTO_URL.cat}})));
  await step('search_input_id', async () => searchView(await app.inputs.search({input: {id: P + 'coffee'}})));
}

main().then(
  () => process.stdout.write('\n' + JSON.stringify({steps: results}) + '\n'),
  (err) => {
    results.main = {ok: false, error: describe(err)};
    process.stdout.write('\n' + JSON.stringify({steps: results}) + '\n');
  });
