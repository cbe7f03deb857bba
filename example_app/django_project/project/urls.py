from django.contrib.auth import views as auth_views
from django.urls import path
from live import views

urlpatterns = [
    path("", views.page, name="page"),
    path("say", views.say, name="say"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="page"), name="logout"),
]
