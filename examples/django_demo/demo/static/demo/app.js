// The demo page: one pusher-js connection, three channels. Everything below is plain pusher-js 8;
// window.VASK_PUSHER comes from {% vask_config %} (key, wsHost/wsPort, forceTLS, auth endpoints, CSRF header).
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("demo-page").textContent);
  const config = window.VASK_PUSHER;
  const csrf = config.options.channelAuthorization.headers["X-CSRFToken"];
  const $ = (id) => document.getElementById(id);

  const pusher = new Pusher(config.key, config.options);
  window.demo = { pusher: pusher };  // for the browser test and the console

  const state = $("connection-state");
  pusher.connection.bind("state_change", function (change) {
    state.dataset.state = change.current;
    state.textContent = change.current;
  });

  // pusher:signin — user authentication through /pusher/user-auth
  pusher.bind("pusher:signin_success", function (data) {
    $("signed-in-as").textContent = JSON.parse(data.user_data).user_info.name;
  });
  pusher.signin();

  function prepend(list, text, bold) {
    const item = document.createElement("li");
    if (bold) {
      const b = document.createElement("b");
      b.textContent = bold;
      item.append(b, " ");
    }
    item.append(text);
    item.classList.add("fresh");
    list.prepend(item);
    return item;
  }

  // 1. Notifications: private-orders.{user_id}, authorized only for this user
  let unread = 0;
  const orders = pusher.subscribe(page.ordersChannel);
  orders.bind("order.shipped", function (data) {
    prepend($("notifications"), data.text);
    unread += 1;
    $("unread").textContent = String(unread);
    $("unread").hidden = false;
  });

  // 2. Who is viewing this document: presence-doc.{id}
  const doc = pusher.subscribe("presence-doc." + page.docId);
  function renderMembers() {
    const list = $("presence");
    list.replaceChildren();
    doc.members.each(function (member) {
      const avatar = document.createElement("li");
      avatar.className = "avatar";
      avatar.dataset.userId = member.id;
      avatar.title = member.info.name + (member.id === page.userId ? " (you)" : "");
      avatar.style.background = member.info.color;
      avatar.textContent = member.info.initials;
      list.append(avatar);
    });
    $("presence-count").textContent = doc.members.count + " viewing";
  }
  doc.bind("pusher:subscription_succeeded", renderMembers);
  doc.bind("pusher:member_added", renderMembers);
  doc.bind("pusher:member_removed", renderMembers);

  // 3. Live feed: the public channel "feed"
  const feed = pusher.subscribe("feed");
  feed.bind("feed.item", function (data) {
    prepend($("feed"), data.text, data.author);
  });

  // Leaving the page goes offline: Chrome may keep a page that has left, open socket included, in its
  // back/forward cache, which would leave the user "viewing" the document. Coming back reconnects, and
  // pusher-js subscribes to the channels again.
  window.addEventListener("pagehide", function () { pusher.disconnect(); });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { pusher.connect(); } });

  // The actions post with fetch (CSRF header as Django expects); the events above update the page.
  function post(form, body) {
    return fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
    });
  }
  $("ship-form").addEventListener("submit", function (event) {
    event.preventDefault();
    post(event.target, null);
  });
  $("feed-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    post(form, new FormData(form)).then(function () { form.reset(); });
  });
})();
