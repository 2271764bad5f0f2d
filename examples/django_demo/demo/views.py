"""The demo's pages and actions. The actions answer JSON to the page's fetch() and redirect a plain form post."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from vask.contrib.django import trigger_on_commit

from .identity import member_info
from .models import Document, FeedItem
from .orders import ship_next_order


def _done(request: HttpRequest, payload: dict, status: int = 200) -> HttpResponse:  # type: ignore[type-arg]
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(payload, status=status)
    return redirect(request.headers.get("Referer") or "home")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("document", pk=Document.objects.order_by("pk").values_list("pk", flat=True).first() or 1)


@login_required
def document(request: HttpRequest, pk: int) -> HttpResponse:
    doc = get_object_or_404(Document, pk=pk)
    page = {"docId": doc.pk, "userId": str(request.user.pk), "ordersChannel": f"private-orders.{request.user.pk}"}
    return render(request, "demo/document.html", {
        "doc": doc, "page": page, "me": member_info(request.user, None),
        "notifications": request.user.notifications.all()[:8],
        "feed": FeedItem.objects.select_related("author")[:10],
    })


@login_required
@require_POST
def ship_order(request: HttpRequest) -> HttpResponse:
    order = ship_next_order(request.user)
    return _done(request, {"order": order.pk}, status=202)


@login_required
@require_POST
def post_feed_item(request: HttpRequest) -> HttpResponse:
    text = request.POST.get("text", "").strip()[:280]
    if not text:
        return _done(request, {"error": "empty"}, status=400)
    item = FeedItem.objects.create(author=request.user, text=text)
    author = member_info(request.user, None)
    trigger_on_commit("feed", "feed.item", {"id": item.pk, "text": item.text, "at": item.created,
                                            "author": author["name"], "color": author["color"]})
    return _done(request, {"id": item.pk}, status=201)
