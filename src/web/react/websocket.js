// react/websocket.js — `useWebSocket` and `WebSocketContext` for React apps, served by the
// binary at /assets/react/websocket.js (docs/react-hook.md says how to use it).
//
// The protocol work is the dashboard's own `connection.js` (the same code, tested in the
// browser suite): reconnect with exponential backoff and jitter, resume with
// `last_event_id` + `epoch`, `resync_required`, ping and silence detection, no retry on
// 4401/4403/4404/1003/1009. This file only binds it to React.
//
// React is not imported here (the binary serves no React, and a page's React may come from a
// bundler, a CDN or a UMD script): the page passes its own to `bindReact(React)`.

import { Connection, STATUS, CLOSE, backoffDelay } from '../connection.js';

export { STATUS, CLOSE, backoffDelay };

/** At most this many events are kept by the provider (newest first). */
const KEEP_EVENTS = 50;

/**
 * Builds the hook, the context and its provider for the React the page uses.
 * @param {typeof import('react')} React
 */
export function bindReact(React) {
  const { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } = React;

  /**
   * Keeps one channel connected.
   * @param {string} path e.g. '/ws/dashboard/', `/ws/business/${id}/`, '/ws/owner/'
   * @param {string|null} token the JWT; null keeps the socket closed. A new token for the
   *   same user is sent over the open socket (`auth`), with no reconnect; a channel stopped
   *   by 4401 starts again (resuming) when a new token arrives.
   * @param {{ onEvent?, onMessage?, onResync?, onStatus?, onStop? }} handlers the latest
   *   ones are always called; changing them never reconnects. `onResync(reason, payload)`:
   *   reason 'initial' (first connection) or 'resync_required' — refetch over REST.
   * @returns {{ status: string, send(frame): boolean, lastEventId(): number|null, epoch(): string|null, reconnect(): void }}
   */
  function useWebSocket(path, token, handlers = {}) {
    const [status, setStatus] = useState(token ? STATUS.CONNECTING : STATUS.OFFLINE);
    const handlersRef = useRef(handlers);
    handlersRef.current = handlers;
    const tokenRef = useRef(token);
    tokenRef.current = token;
    const sentToken = useRef(token);
    const connRef = useRef(null);
    const hasToken = Boolean(token);

    useEffect(() => {
      if (!hasToken) {
        setStatus(STATUS.OFFLINE);
        return undefined;
      }
      const conn = new Connection({
        path,
        getToken: () => tokenRef.current,
        onEvent: (frame) => handlersRef.current.onEvent?.(frame),
        onMessage: (frame) => handlersRef.current.onMessage?.(frame),
        onResync: (reason, payload) => handlersRef.current.onResync?.(reason, payload),
        onStatus: (next, detail) => {
          setStatus(next);
          handlersRef.current.onStatus?.(next, detail);
        },
        onStop: (reason, code) => handlersRef.current.onStop?.(reason, code),
      });
      connRef.current = conn;
      sentToken.current = tokenRef.current;
      conn.start();
      return () => {
        conn.stop();
        if (connRef.current === conn) connRef.current = null;
      };
    }, [path, hasToken]);

    useEffect(() => {
      const conn = connRef.current;
      if (!token || !conn || sentToken.current === token) return;
      sentToken.current = token;
      if (conn.stopped) conn.start(); // stopped by 4401: the new token may fix it
      else conn.send({ type: 'auth', token }); // not open: the next reconnect uses it anyway
    }, [token]);

    const send = useCallback((frame) => connRef.current?.send(frame) ?? false, []);
    const lastEventId = useCallback(() => connRef.current?.lastEventId ?? null, []);
    const epoch = useCallback(() => connRef.current?.epoch ?? null, []);
    const reconnect = useCallback(() => connRef.current?.reconnectNow(), []);
    return { status, send, lastEventId, epoch, reconnect };
  }

  const WebSocketContext = createContext(null);

  /** The provider's value: `{ status, isConnected, events, resyncs, send, lastEventId, epoch }`. */
  const useWebSocketContext = () => useContext(WebSocketContext);

  /**
   * Holds one channel for a subtree: the connection status, the last events (newest first,
   * each id once, at most 50) and a counter of resyncs. `onResync` is where the app refetches
   * its REST state (the events list is cleared then: the REST answer replaces it).
   * Props: `{ path, token, onEvent?, onMessage?, onResync?, onStop?, children }`.
   */
  function WebSocketProvider({ path = '/ws/dashboard/', token, onEvent, onMessage, onResync, onStop, children }) {
    const [events, setEvents] = useState([]);
    const [resyncs, setResyncs] = useState(0);
    const { status, send, lastEventId, epoch } = useWebSocket(path, token, {
      onEvent(frame) {
        setEvents((list) => (list.some((e) => e.id === frame.id) ? list : [frame, ...list].slice(0, KEEP_EVENTS)));
        onEvent?.(frame);
      },
      onMessage,
      onResync(reason, payload) {
        setEvents([]);
        setResyncs((n) => n + 1);
        onResync?.(reason, payload);
      },
      onStop,
    });
    const value = useMemo(
      () => ({ status, isConnected: status === STATUS.LIVE, events, resyncs, send, lastEventId, epoch }),
      [status, events, resyncs, send, lastEventId, epoch],
    );
    return createElement(WebSocketContext.Provider, { value }, children);
  }

  return { useWebSocket, WebSocketContext, WebSocketProvider, useWebSocketContext };
}
