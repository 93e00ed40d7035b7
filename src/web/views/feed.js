// views/feed.js — the activity feed: the last 50 events, newest first, live, with a filter
// by event type (the server filters its own last 50; live events are filtered here), and
// "Load older" paging back through the retained log (same filter) until its start.

import { h, keyedList, formatDateTime, toast, setText } from '../dom.js';
import { watch } from '../state.js';

/** Event types and how a person reads them. */
export const EVENT_TYPES = [
  ['business_created', 'Business created'],
  ['business_updated', 'Business updated'],
  ['business_deleted', 'Business deleted'],
  ['reservation_created', 'Reservation created'],
  ['reservation_cancelled', 'Reservation cancelled'],
];
const TYPE_LABEL = Object.fromEntries(EVENT_TYPES);

/**
 * Renders the feed section and keeps it live. Returns the unsubscribe function.
 * @param {import('../state.js').LiveState} live
 */
export function renderFeed(live) {
  const select = h(
    'select',
    { id: 'activity-filter', name: 'type' },
    h('option', { value: '' }, 'All events'),
    EVENT_TYPES.map(([value, label]) => h('option', { value }, label)),
  );
  select.value = live.store.get().activity.filter;
  select.addEventListener('change', () => {
    live.setActivityFilter(select.value).catch((err) => toast(err.message, 'error'));
  });
  const list = h('ol', { class: 'feed', id: 'activity', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const empty = h('p', { class: 'empty' }, 'Nothing has happened yet.');
  const older = h('button', { type: 'button', class: 'btn btn-small', id: 'load-older', hidden: true }, 'Load older');
  // Said once the server has no older event (of the chosen type) to give.
  const end = h('p', { class: 'muted feed-end', id: 'feed-end', hidden: true });
  older.addEventListener('click', async () => {
    older.disabled = true;
    setText(older, 'Loading…');
    try {
      await live.loadOlderActivity();
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      older.disabled = false;
      setText(older, 'Load older');
    }
  });
  const section = h(
    'section',
    { class: 'card feed-card', 'aria-labelledby': 'feed-title' },
    h('div', { class: 'card-head' },
      h('h2', { id: 'feed-title' }, 'Activity'),
      h('div', { class: 'inline-field' }, h('label', { for: 'activity-filter' }, 'Show'), select),
    ),
    empty,
    list,
    h('div', { class: 'actions feed-more' }, end, older),
  );
  const stop = watch(live.store, (s) => s.activity, (activity) => {
    empty.hidden = activity.items.length > 0;
    keyedList(list, activity.items, (e) => e.id, renderEvent, () => {});
    // `nextBefore` undefined (a filter's first page not in): neither is known.
    older.hidden = activity.nextBefore == null;
    end.hidden = activity.nextBefore !== null || activity.items.length === 0;
    const kind = activity.filter ? `${TYPE_LABEL[activity.filter] || activity.filter} events` : 'events';
    setText(end, `Start of the history: no older ${kind.toLowerCase()} are kept.`);
  });
  return { section, stop };
}

/** One feed line: the server's sentence, the type as a tag, the time. */
export function renderEvent(event) {
  return h(
    'li',
    { class: 'feed-item', 'data-type': event.type },
    h('span', { class: `tag tag-${event.type.split('_')[0]}` }, TYPE_LABEL[event.type] || event.type),
    h('span', { class: 'feed-msg' }, event.payload?.message || event.type),
    h('time', { datetime: event.timestamp }, formatDateTime(event.timestamp)),
  );
}
