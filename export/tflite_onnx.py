"""TensorFlow Lite → ONNX for MediaPipe's hand models: read the .tflite flatbuffer, write the same graph in ONNX.

Only the operators the palm detector and hand landmarker use (float16 weights with DEQUANTIZE, CONV_2D,
DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR, FULLY_CONNECTED,
LOGISTIC, MEAN); any other raises ``UnsupportedOperator`` naming it. TFLite is NHWC and ONNX convolutions are
NCHW: the input is transposed once, every 4-D tensor stays NCHW, and a tensor is transposed back only where a
reshape or a fully connected layer reads it in NHWC order. The interface stays NHWC (input ``(1, H, W, 3)``),
so the outputs match TFLite's to ~1e-4 (checked against ai-edge-litert when converting in development; the
tests check the converted models against MediaPipe's landmarks on real photos).
"""

from __future__ import annotations

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

from formats.errors import RuntimeToolkitError


class UnsupportedOperator(RuntimeToolkitError):
    """The .tflite graph uses an operator this converter does not translate."""


OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
NP = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16, tflite.TensorType.INT32: np.int32}
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _opts(op, cls):
    table = op.BuiltinOptions()
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o


class Converter:
    """One conversion: tensors by TFLite index → ONNX names (NCHW for 4-D), constants kept as numpy."""

    def __init__(self, buf: bytes, opset: int = 17) -> None:
        self.opset = opset
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        self.g = self.model.Subgraphs(0)
        self.nodes, self.inits = [], []
        self.const = {}  # tensor index -> numpy (tflite layout)
        self.names = {}  # tensor index -> onnx name (NCHW for 4-D)
        self.n = 0

    def tensor(self, i):
        return self.g.Tensors(i)

    def shape(self, i):
        return [int(s) for s in self.tensor(i).ShapeAsNumpy()]

    def buffer(self, i):
        t = self.tensor(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data is None or len(data) == 0:
            return None
        return np.frombuffer(data.tobytes(), dtype=NP[t.Type()]).reshape(self.shape(i))

    def fresh(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, arr, base="w"):
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op, inputs, out=None, **attrs):
        out = out or self.fresh(op)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def value(self, i):
        if i in self.names:
            return self.names[i]
        arr = self.const.get(i)
        if arr is None:
            arr = self.buffer(i)
        if arr is None:
            raise UnsupportedOperator(f"tensor {i} is read before any operator writes it")
        return self.init(arr.astype(np.float32) if arr.dtype == np.float16 else arr)

    def activation(self, x, fused, out):
        if fused == 0:
            return self.node("Identity", [x], out)
        if fused == 1:
            return self.node("Relu", [x], out)
        if fused == 3:
            return self.node("Clip", [x, self.init(np.float32(0)), self.init(np.float32(6))], out)
        raise UnsupportedOperator(f"fused activation {fused} (only none, RELU, RELU6)")

    def pads(self, in_shape, k, stride, dilation, same):
        if not same:
            return [0, 0, 0, 0]
        out = []
        for size, kk, s, d in zip(in_shape, k, stride, dilation, strict=True):
            eff = (kk - 1) * d + 1
            o = -(-size // s)
            total = max((o - 1) * s + eff - size, 0)
            out.append((total // 2, total - total // 2))
        return [out[0][0], out[1][0], out[0][1], out[1][1]]

    def out_name(self, op):
        i = op.Outputs(0)
        name = self.tensor(i).Name().decode()
        self.names[i] = name
        return name

    def convert_op(self, op):
        kind = OPS[self.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        ins = [op.Inputs(k) for k in range(op.InputsLength())]
        if kind == "DEQUANTIZE":
            self.const[op.Outputs(0)] = self.buffer(ins[0]).astype(np.float32)
            return
        out = self.out_name(op)
        handler = getattr(self, "op_" + kind.lower(), None)
        if handler is None:
            raise UnsupportedOperator(f"TFLite operator {kind} is not supported by this converter")
        handler(op, ins, out)

    def op_conv_2d(self, op, ins, out, depthwise=False):
        cls = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
        o = _opts(op, cls)
        w = self.const.get(ins[1], None)
        w = self.buffer(ins[1]) if w is None else w
        w = w.astype(np.float32)
        in_shape = self.shape(ins[0])
        if depthwise:
            w = w.transpose(3, 0, 1, 2)  # [1,H,W,C] -> [C,1,H,W]
            group = in_shape[3]
        else:
            w = w.transpose(0, 3, 1, 2)  # [O,H,W,I] -> [O,I,H,W]
            group = 1
        k = list(w.shape[2:])
        stride = [o.StrideH(), o.StrideW()]
        dil = [o.DilationHFactor(), o.DilationWFactor()]
        pads = self.pads(in_shape[1:3], k, stride, dil, o.Padding() == tflite.Padding.SAME)
        inputs = [self.value(ins[0]), self.init(w)]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.value(ins[2]))
        y = self.node("Conv", inputs, kernel_shape=k, strides=stride, dilations=dil, pads=pads, group=group)
        self.activation(y, o.FusedActivationFunction(), out)

    def op_depthwise_conv_2d(self, op, ins, out):
        self.op_conv_2d(op, ins, out, depthwise=True)

    def op_prelu(self, op, ins, out):
        alpha = self.const.get(ins[1])
        alpha = self.buffer(ins[1]) if alpha is None else alpha
        alpha = alpha.astype(np.float32).reshape(-1, 1, 1)
        self.node("PRelu", [self.value(ins[0]), self.init(alpha)], out)

    def op_add(self, op, ins, out):
        o = _opts(op, tflite.AddOptions)
        y = self.node("Add", [self.value(ins[0]), self.value(ins[1])])
        self.activation(y, o.FusedActivationFunction(), out)

    def op_max_pool_2d(self, op, ins, out):
        o = _opts(op, tflite.Pool2DOptions)
        k = [o.FilterHeight(), o.FilterWidth()]
        stride = [o.StrideH(), o.StrideW()]
        pads = self.pads(self.shape(ins[0])[1:3], k, stride, [1, 1], o.Padding() == tflite.Padding.SAME)
        y = self.node("MaxPool", [self.value(ins[0])], kernel_shape=k, strides=stride, pads=pads)
        self.activation(y, o.FusedActivationFunction(), out)

    def op_pad(self, op, ins, out):
        p = self.buffer(ins[1])  # [4,2] NHWC
        order = [0, 3, 1, 2]
        pads = [int(p[a, 0]) for a in order] + [int(p[a, 1]) for a in order]
        self.node("Pad", [self.value(ins[0]), self.init(np.array(pads, np.int64))], out)

    def to_nhwc(self, i):
        x = self.value(i)
        return self.node("Transpose", [x], perm=[0, 2, 3, 1]) if len(self.shape(i)) == 4 else x

    def op_reshape(self, op, ins, out):
        shape = self.shape(op.Outputs(0))
        if len(shape) == 4:
            raise UnsupportedOperator("RESHAPE to a 4-D shape")
        self.node("Reshape", [self.to_nhwc(ins[0]), self.init(np.array(shape, np.int64))], out)

    def op_concatenation(self, op, ins, out):
        o = _opts(op, tflite.ConcatenationOptions)
        axis = o.Axis()
        rank = len(self.shape(ins[0]))
        axis = axis % rank
        if rank == 4:
            axis = NHWC_TO_NCHW_AXIS[axis]
        y = self.node("Concat", [self.value(i) for i in ins], axis=axis)
        self.activation(y, o.FusedActivationFunction(), out)

    def op_resize_bilinear(self, op, ins, out):
        o = _opts(op, tflite.ResizeBilinearOptions)
        mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
        n, h, w, c = self.shape(op.Outputs(0))
        sizes = self.init(np.array([n, c, h, w], np.int64))
        self.node(
            "Resize", [self.value(ins[0]), "", "", sizes], out, mode="linear", coordinate_transformation_mode=mode
        )

    def op_fully_connected(self, op, ins, out):
        o = _opts(op, tflite.FullyConnectedOptions)
        w = self.const.get(ins[1])
        w = self.buffer(ins[1]) if w is None else w
        x = self.to_nhwc(ins[0])
        x = self.node("Reshape", [x, self.init(np.array([-1, w.shape[1]], np.int64))])
        inputs = [x, self.init(w.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.value(ins[2]))
        y = self.node("Gemm", inputs, transB=1)
        self.activation(y, o.FusedActivationFunction(), out)

    def op_logistic(self, op, ins, out):
        self.node("Sigmoid", [self.value(ins[0])], out)

    def op_mean(self, op, ins, out):
        o = _opts(op, tflite.ReducerOptions)
        axes = [int(a) for a in self.buffer(ins[1]).reshape(-1)]
        rank = len(self.shape(ins[0]))
        if rank == 4:
            axes = [NHWC_TO_NCHW_AXIS[a % 4] for a in axes]
        self.node("ReduceMean", [self.value(ins[0])], out, axes=axes, keepdims=int(o.KeepDims()))

    def convert(self):
        g = self.g
        inputs = []
        for k in range(g.InputsLength()):
            i = g.Inputs(k)
            n, h, w, c = self.shape(i)
            name = self.tensor(i).Name().decode()
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, h, w, c]))
            self.names[i] = self.node("Transpose", [name], perm=[0, 3, 1, 2])
        for k in range(g.OperatorsLength()):
            self.convert_op(g.Operators(k))
        outputs = []
        for k in range(g.OutputsLength()):
            i = g.Outputs(k)
            shape = self.shape(i)
            name = self.names[i]
            if len(shape) == 4:
                name = self.to_nhwc(i)
            final = self.tensor(i).Name().decode().replace("Identity", "out")
            self.node("Identity", [name], final)
            outputs.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, shape))
        graph = helper.make_graph(self.nodes, "tflite", inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def convert_tflite(data: bytes, opset: int = 17) -> onnx.ModelProto:
    """The ONNX model of a .tflite file's first subgraph (opset 17: TensorRT 8.6 on JetPack 6 parses it)."""
    return Converter(data, opset).convert()
