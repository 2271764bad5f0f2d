"""Who may subscribe to what; imported by vask.contrib.django when Django starts."""

from vask.contrib.django import authorizers, same_user

from .models import Document

# A user's order notifications: only that user.
authorizers.register("private-orders.{user_id}", same_user("user_id"))


# Who is looking at a document: any logged-in user, for documents that exist.
@authorizers.channel("presence-doc.{doc_id}")
def document_viewers(user, doc_id: str) -> bool:  # type: ignore[no-untyped-def]
    return doc_id.isdigit() and Document.objects.filter(pk=int(doc_id)).exists()
