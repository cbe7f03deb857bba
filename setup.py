from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="wsgi_push",
    version="0.1.0",
    description="Server push (SSE, long polling, chunked streaming) for any WSGI app, on gevent",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["wsgi_push", "wsgi_push.*"]),
    package_data={"wsgi_push": ["static/client.js", "py.typed"]},
    install_requires=["gevent>=23.9", "werkzeug>=2.3"],
    extras_require={
        "redis": ["redis>=5.0"],
        "flask": ["flask>=2.3"],
        # Request heads parsed by llhttp in wsgi_push.serve (wsgi_push/httpfast.py).
        "speedups": ["httptools>=0.6.1"],
        "dev": [
            "flask>=2.3",
            "redis>=5.0",
            "gunicorn>=27",
            "pytest>=8",
            "pytest-timeout>=2.3",
            "requests>=2.31",
            "httpx>=0.27",
            "hypothesis>=6.100",
            "playwright>=1.45",
            "ruff>=0.5",
            "mypy>=1.10",
            "httptools>=0.6.1",
        ],
    },
    entry_points={"console_scripts": ["wsgi-push=wsgi_push.__main__:main"]},
    classifiers=[
        "Framework :: Flask",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
    ],
)
