import subprocess

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from .models import Article


def article(request, slug):
    art = get_object_or_404(Article, slug=slug, published=True)
    return render(request, "blog/article.html", {"article": art})


def search(request):
    q = request.GET.get("q", "").strip()[:100]
    results = Article.objects.filter(title__icontains=q)[:20] if q else []
    return render(request, "blog/search.html", {"q": q, "results": results})


@login_required
def service_status(request):
    out = subprocess.run(["systemctl", "is-active", "nginx"], capture_output=True, text=True)
    return JsonResponse({"nginx": out.stdout.strip()})
