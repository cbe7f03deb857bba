import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version lives in wsgi_push/_version.py alone; read it as text, since
# importing the package here would need gevent before it is installed.
VERSION = re.search(
    r'^__version__ = "([^"]+)"$', (HERE / "wsgi_push/_version.py").read_text(), re.M
).group(1)
# Where the project lives; every project URL below derives from it.
REPOSITORY = "https://github.com/wsgi-push/wsgi_push"

setup(
    name="wsgi_push",
    version=VERSION,
    description="Server push (SSE, long polling, chunked streaming) for any WSGI app, on gevent",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    project_urls={
        "Source": REPOSITORY,
        "Documentation": f"{REPOSITORY}/tree/main/docs",
        "Changelog": f"{REPOSITORY}/blob/main/CHANGELOG.md",
        "Issues": f"{REPOSITORY}/issues",
    },
    python_requires=">=3.10",
    packages=find_packages(include=["wsgi_push", "wsgi_push.*"]),
    package_data={
        "wsgi_push": ["static/*", "py.typed"],
        "wsgi_push.brokers.redis": ["lua/*.lua"],
    },
    # Only what the package imports: gevent (greenlet comes with it). Flask,
    # redis and gunicorn are imported only by the modules of their extras.
    install_requires=["gevent>=23.9.1,<27"],  # the range .ci/run tests: docs/hardening.md
    extras_require={
        "redis": ["redis>=5.0"],
        "flask": ["flask>=2.3"],
        "django": ["django>=4.2"],
        # gunicorn's gevent worker, which wsgi_push.gunicorn.GeventWorker
        # extends, needs gunicorn's own gevent extra (it imports packaging).
        "gunicorn": ["gunicorn[gevent]>=27"],
        "prometheus": ["prometheus_client>=0.20"],
        # Requests read and parsed by llhttp in wsgi_push.serve (wsgi_push/httpfast.py).
        "speedups": ["httptools>=0.6.1"],
        "dev": [
            "flask>=2.3",
            "django>=4.2",
            "redis>=5.0",
            # Not gunicorn[gevent], which needs gevent>=24.10.1: the test
            # environment must also resolve with the oldest gevent we support.
            "gunicorn>=27",
            "packaging",
            "werkzeug>=2.3",  # the tests' in-process Client
            "pytest>=8",
            "pytest-timeout>=2.3",
            "requests>=2.31",
            "httpx>=0.27",
            "hypothesis>=6.100",
            "playwright>=1.45",
            "ruff>=0.5",
            "mypy>=1.10",
            "build>=1.2",
            "twine>=6.1",
            "prometheus_client>=0.20",
            "httptools>=0.6.1",
        ],
    },
    entry_points={"console_scripts": ["wsgi-push=wsgi_push.__main__:main"]},
    classifiers=[
        "Development Status :: 4 - Beta",
        "Framework :: Django",
        "Framework :: Flask",
        "Framework :: Gevent",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
        "Typing :: Typed",
    ],
)
