// The service worker: on the first visit it keeps every file of the app (page, scripts, runtime,
// the model shown first and its export's number reader) in a cache named after the build, then
// answers from that cache first, so later visits work offline and fetch nothing. Other bundled
// models (and their readers) are kept when first used. `mnist-edge web` fills in the list and the version.

const PRECACHE = { version: 'source', files: [] }; // replaced by `mnist-edge web`
const CACHE = `mnist-edge-${PRECACHE.version}`;
const LAST_GOOD_CACHE = 'mnist-edge-last-good'; // js/lastgood.js: the last model that passed its checks

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE.files))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key.startsWith('mnist-edge-') && key !== CACHE && key !== LAST_GOOD_CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  if (request.url.startsWith(new URL('last-good/', self.registration.scope).href)) return event.respondWith(lastGood(request));
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(request, { ignoreSearch: true });
      if (cached) return cached;
      const response = await fetch(request);
      // The models not shown first are not kept at install; each is kept the first time it is used.
      if (response.ok && new URL(request.url).pathname.includes('/models/')) await cache.put(request, response.clone());
      return response;
    }),
  );
});

// The last good model's files (js/lastgood.js) come from its cache only, never from the network.
async function lastGood(request) {
  const kept = await (await caches.open(LAST_GOOD_CACHE)).match(request);
  return kept || new Response('this model was not kept in this browser', { status: 404, statusText: 'Not Found' });
}
