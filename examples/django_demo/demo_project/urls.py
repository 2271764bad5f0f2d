from django.contrib.auth import views as auth_views
from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/<int:pk>/", views.document, name="document"),
    path("orders/ship/", views.ship_order, name="ship-order"),
    path("feed/", views.post_feed_item, name="feed-post"),
    path("login/", auth_views.LoginView.as_view(template_name="demo/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # /pusher/auth, /pusher/user-auth, /pusher/webhook: pusher-js' default endpoints
    path("pusher/", include("vask.contrib.django.urls")),
]
