"""rosberta-onnx: ai-forever/ru-en-RoSBERTa sentence embeddings with ONNX Runtime, tokenizers and numpy.

    from rosberta_onnx import Encoder
    enc = Encoder.load("models/ru-en-rosberta")
    vecs = enc.encode(["Сколько программистов нужно?"], task="search_query")

The runtime never imports torch or transformers; the export side lives in the ``rosberta_export``
package (``pip install 'rosberta-onnx[export]'``).
"""

from .encoder import Encoded, Encoder, HardwareWarning
from .errors import RosbertaError
from .prompts import PromptWarning

__version__ = "0.1.0"

__all__ = ["Encoder", "Encoded", "RosbertaError", "PromptWarning", "HardwareWarning", "__version__"]
