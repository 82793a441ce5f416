-- The sample application's schema (what the app engineers' migrations have built so far).
CREATE TYPE order_status AS ENUM ('placed', 'paid', 'shipped', 'delivered', 'cancelled');
CREATE DOMAIN email_address AS varchar(320) CHECK (VALUE LIKE '%@%');

CREATE TABLE categories (id serial PRIMARY KEY, name text NOT NULL, parent_id int REFERENCES categories);
CREATE TABLE suppliers  (id serial PRIMARY KEY, name text NOT NULL, country char(2));
CREATE TABLE products   (id bigserial PRIMARY KEY, sku varchar(32) UNIQUE NOT NULL, name text NOT NULL,
                         category_id int REFERENCES categories, supplier_id int REFERENCES suppliers,
                         price numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE customers  (id bigserial PRIMARY KEY, email email_address NOT NULL, full_name text,
                         phone varchar(32), marketing_opt_in boolean NOT NULL DEFAULT false,
                         created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE addresses  (id bigserial PRIMARY KEY, customer_id bigint REFERENCES customers,
                         line1 text, city text, postcode varchar(16), country char(2));
CREATE TABLE coupons    (code varchar(24) PRIMARY KEY, percent_off smallint, valid_until date);
CREATE TABLE orders     (id bigserial PRIMARY KEY, customer_id bigint REFERENCES customers,
                         status order_status NOT NULL DEFAULT 'placed', coupon_code varchar(24),
                         total numeric(12,2), placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_items (order_id bigint REFERENCES orders, product_id bigint REFERENCES products,
                         quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL,
                         PRIMARY KEY (order_id, product_id));
CREATE TABLE reviews    (id bigserial PRIMARY KEY, product_id bigint, customer_id bigint,
                         rating smallint, body text, created_at timestamptz DEFAULT now());

CREATE SCHEMA payments;
CREATE TABLE payments.payments (id bigserial PRIMARY KEY, order_id bigint, method text,
                                amount_cents integer NOT NULL, captured_at timestamptz);
CREATE TABLE payments.refunds  (id bigserial PRIMARY KEY, payment_id bigint, amount_cents integer,
                                reason text);

CREATE SCHEMA logistics;
CREATE TABLE logistics.shipments (id bigserial PRIMARY KEY, order_id bigint, carrier text,
                                  tracking_no varchar(64), shipped_at timestamptz, delivered_at timestamptz);
CREATE TABLE logistics.inventory (product_id bigint, warehouse text, on_hand integer,
                                  updated_at timestamptz);
