// A tiny React app on the served hook module (/assets/react/websocket.js), for react.test.js:
// it renders the channel's status, its events and its resyncs, and keeps a log of every
// callback in `window.log` for the test to read. `window.setToken` gives it a new token.
import { bindReact } from '/assets/react/websocket.js';

const { React, ReactDOM } = window;
const { WebSocketProvider, useWebSocketContext } = bindReact(React);
const e = React.createElement;

window.log = { events: [], resyncs: [], messages: [], statuses: [] };

function View() {
  const { status, events, resyncs } = useWebSocketContext();
  return e('section', null,
    e('p', { id: 'status' }, status),
    e('p', { id: 'resyncs' }, String(resyncs)),
    e('ul', { id: 'events' }, events.map((ev) => e('li', { key: ev.id, 'data-id': ev.id }, ev.payload.message))));
}

function App() {
  const [token, setToken] = React.useState(new URLSearchParams(window.location.search).get('token'));
  window.setToken = setToken;
  return e(WebSocketProvider, {
    path: '/ws/dashboard/',
    token,
    onEvent: (frame) => window.log.events.push(frame.id),
    onResync: (reason, payload) => window.log.resyncs.push({ reason, lastEventId: payload.last_event_id }),
    onMessage: (frame) => window.log.messages.push(frame.type),
    onStop: (reason) => window.log.messages.push(`stop:${reason}`),
  }, e(View));
}

ReactDOM.createRoot(document.getElementById('root')).render(e(App));
