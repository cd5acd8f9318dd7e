# executor/display.py - envhub's matplotlib backend: figures a job shows
# (plt.show()) or leaves open at its end come back as PNG pictures in the
# answer's `display` list. Compiled into envhub (core/embed.sh), put into the
# workspace with the inputs as .envhub/envhub_display.py, and chosen by the
# wrapper (executor/wrapper.sh) through MPLBACKEND=module://envhub_display
# and PYTHONPATH; matplotlib imports it only when a job draws, so jobs
# without matplotlib never load it. Draws with Agg, like MPLBACKEND=Agg did.
#
# Each picture is a file figure-N.png in ENVHUB_DISPLAY_DIR, N the first
# number free (created with O_EXCL, so processes of one job never overwrite
# each other's), at most ENVHUB_MAX_DISPLAY of them; past it a figure is
# left out with a line on stderr. A figure larger than 4096 x 4096 pixels at
# its dpi is saved at a lower dpi. envhub checks what it collects again (PNG
# signature, names, sizes, count): this module is a convenience, not a
# boundary.
import atexit
import math
import os
import sys

from matplotlib import _pylab_helpers
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase

_DIR = os.environ.get("ENVHUB_DISPLAY_DIR", "")
try:
    _MAX = int(os.environ.get("ENVHUB_MAX_DISPLAY", "20"))
except ValueError:
    _MAX = 20
_MAX_PIXELS = 4096 * 4096
_warned = False


def _open_next():
    """The next free figure-N.png, opened for writing; None past the limit."""
    global _warned
    if not _DIR:
        return None
    os.makedirs(_DIR, exist_ok=True)
    for n in range(1, _MAX + 1):
        try:
            return open(os.path.join(_DIR, "figure-%d.png" % n), "xb")
        except FileExistsError:
            continue
    if not _warned:
        _warned = True
        print("envhub: more than %d figures shown; the rest are not returned "
              "(ENVHUB_MAX_DISPLAY)" % _MAX, file=sys.stderr)
    return None


def _save(figure):
    f = _open_next()
    if f is None:
        return
    with f:
        dpi = figure.dpi
        w, h = figure.get_size_inches()
        if w * h * dpi * dpi > _MAX_PIXELS and w * h > 0:
            dpi = math.sqrt(_MAX_PIXELS / (w * h))
        figure.savefig(f, format="png", dpi=dpi)


def _show_all():
    for manager in _pylab_helpers.Gcf.get_all_fig_managers():
        try:
            _save(manager.canvas.figure)
        except Exception as e:  # a figure that cannot be drawn must not stop the others
            print("envhub: a figure could not be saved: %s" % e, file=sys.stderr)
    _pylab_helpers.Gcf.destroy_all()


def show(*args, **kwargs):
    """plt.show(): every open figure becomes a picture, then is closed."""
    _show_all()


# Figures still open at the end come back too (runs before matplotlib's own
# atexit clean-up, registered earlier).
atexit.register(_show_all)
